"""ConsisID transformer forward pass with face tokens computed once, not once per step.

`ConsisIDTransformer3DModel.forward` reruns the local facial extractor on every call although its
output depends only on the face. This mirrors that forward operation for operation (so results are
bit-identical) but takes the precomputed face tokens.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol

import torch
import torch.utils.checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from .teacache import TeaCacheRun


class TokenSharding(Protocol):
    """What the forward asks of a multi-GPU plan (consisid_core.parallel.ParallelPlan implements it, one layer up):
    this rank's CFG branch and token slice in, the whole batch and every token back out."""

    def shard_batch(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]: ...

    def gather_batch(self, tensor: torch.Tensor) -> torch.Tensor: ...

    def shard_tokens(self, video: torch.Tensor, text: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def gather_tokens(self, video: torch.Tensor, text: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]: ...


def face_tokens(transformer, id_cond: torch.Tensor, id_vit_hidden: list[torch.Tensor], dtype: torch.dtype,
                device: torch.device) -> torch.Tensor:
    """Run the local facial extractor (Q-Former) on ArcFace+EVA features -> [1, queries, kv_dim]."""
    id_cond = id_cond.to(device=device, dtype=dtype)
    id_vit_hidden = [t.to(device=device, dtype=dtype) for t in id_vit_hidden]
    return transformer.local_facial_extractor(id_cond, id_vit_hidden)


def transformer_forward(
    transformer,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    timestep: torch.Tensor,
    image_rotary_emb,
    tokens: torch.Tensor | None,
    face_scale: float,
    cache: "TeaCacheRun | None" = None,
    parallel: TokenSharding | None = None,
) -> torch.Tensor:
    """Predict v for `hidden_states` [B, T, 2C, h, w]; face tokens (batch 1) reach every CFG branch.

    With a step `cache`, a skipped step replaces the whole block loop (blocks and face injections) by the
    residuals cached at the last computed step; the embeddings, final norms and projection always run.
    """
    batch_size, num_frames, _, height, width = hidden_states.shape
    t_emb = transformer.time_proj(timestep).to(dtype=hidden_states.dtype)
    emb = transformer.time_embedding(t_emb, None)
    signal = emb  # the step cache decides on the whole batch's embedding, so every rank decides alike
    if parallel is not None:  # this rank's CFG branch
        hidden_states, encoder_hidden_states, emb = parallel.shard_batch(hidden_states, encoder_hidden_states, emb)
        batch_size = hidden_states.shape[0]

    hidden_states = transformer.patch_embed(encoder_hidden_states, hidden_states)
    hidden_states = transformer.embedding_dropout(hidden_states)
    text_len = encoder_hidden_states.shape[1]
    encoder_hidden_states = hidden_states[:, :text_len]
    hidden_states = hidden_states[:, text_len:]
    if parallel is not None:  # this rank's slice of every frame's tokens (and of the text); rotary comes pre-sliced
        hidden_states, encoder_hidden_states = parallel.shard_tokens(hidden_states, encoder_hidden_states, num_frames)

    if cache is None or cache.should_compute(signal, hidden_states.shape, encoder_hidden_states.shape):
        loop_input = hidden_states, encoder_hidden_states
        inject = tokens is not None and getattr(transformer, "is_train_face", False)
        interval = getattr(transformer, "cross_attn_interval", 1)
        ca_idx = 0
        checkpointed = torch.is_grad_enabled() and getattr(transformer, "gradient_checkpointing", False)  # training
        for i, block in enumerate(transformer.transformer_blocks):
            run = functools.partial(torch.utils.checkpoint.checkpoint, block, use_reentrant=False) if checkpointed else block
            hidden_states, encoder_hidden_states = run(
                hidden_states=hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                temb=emb,
                image_rotary_emb=image_rotary_emb,
            )
            if inject and i % interval == 0:
                hidden_states = hidden_states + face_scale * transformer.perceiver_cross_attention[ca_idx](tokens, hidden_states)
                ca_idx += 1
        if cache is not None:  # blocks never write into their inputs, so the inputs need no copy
            cache.store(hidden_states - loop_input[0], encoder_hidden_states - loop_input[1])
    else:
        hidden_states, encoder_hidden_states = cache.apply(hidden_states, encoder_hidden_states)
    if parallel is not None:
        hidden_states, encoder_hidden_states = parallel.gather_tokens(hidden_states, encoder_hidden_states, num_frames)

    hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
    hidden_states = transformer.norm_final(hidden_states)
    hidden_states = hidden_states[:, text_len:]
    hidden_states = transformer.norm_out(hidden_states, temb=emb)
    hidden_states = transformer.proj_out(hidden_states)

    p = transformer.config.patch_size
    output = hidden_states.reshape(batch_size, num_frames, height // p, width // p, -1, p, p)
    output = output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
    return output if parallel is None else parallel.gather_batch(output)
