"""TeaCache in the block loop: the published rule, the published forward, face injections, no leaked state.

The tiny model's time embedding jumps between steps far more than a trained one (relative L1 distances
of ~0.5, where the polynomial is negative and every step would be skipped), so the tests shift its output
bias: distances of ~0.05-0.15, where thresholds of 0.1-0.3 give a mix of computed and skipped steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import consisid_core
from consisid_core.engine.transformer_forward import transformer_forward
from consisid_core.errors import UnsupportedInputError
from support.engine_inputs import PROMPT, face_image, identity

POLY = np.poly1d([-1.53880483e03, 8.43202495e02, -1.34363087e02, 7.97131516e00, -5.23162339e-02])
STEPS = 12
SIZE = dict(height=32, width=48, num_frames=9)


def _realistic_time_embedding(transformer) -> None:
    with torch.no_grad():
        transformer.time_embedding.linear_2.bias.add_(1.0)


@pytest.fixture(scope="module")
def engine(tiny_model):
    engine = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)
    _realistic_time_embedding(engine.transformer)
    return engine


def _generate(engine, cache=None, guidance=6.0, seed=3, steps=STEPS, callback=None):
    id_cond, hidden = identity()
    return engine.generate(PROMPT, image=face_image(), id_cond=id_cond, id_vit_hidden=hidden, seed=seed,
                           num_inference_steps=steps, guidance_scale=guidance, cache=cache, callback=callback, **SIZE)


def _embeddings(transformer, scheduler_config, steps: int, batch: int) -> list[torch.Tensor]:
    """emb = time_embedding(time_proj(t)) for every step, computed here (not by the engine)."""
    from diffusers import CogVideoXDPMScheduler

    scheduler = CogVideoXDPMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    with torch.no_grad():
        return [transformer.time_embedding(transformer.time_proj(t.expand(batch)).float(), None) for t in scheduler.timesteps]


def _rule(embs: list[torch.Tensor], threshold: float, start: int = 0, end: int | None = None) -> list[int]:
    """The TeaCache4ConsisID decision written out independently: the indices of the skipped steps."""
    n, end = len(embs), len(embs) if end is None else end
    skipped, acc = [], 0.0
    for i in range(n):
        if i in (0, n - 1) or not start <= i < end:
            acc = 0.0
            continue
        prev = embs[i - 1]
        acc += POLY(((embs[i] - prev).abs().mean() / prev.abs().mean()).item())
        if acc < threshold:
            skipped.append(i)
        else:
            acc = 0.0
    return skipped


def test_threshold_zero_is_bit_identical_to_no_cache(engine):
    plain = _generate(engine)
    cache = consisid_core.TeaCache(0.0)
    assert torch.equal(_generate(engine, cache), plain)
    assert cache.stats["skipped"] == 0
    # and the comparison can fail: a real threshold changes the video
    assert not torch.equal(_generate(engine, consisid_core.TeaCache(0.3)), plain)


@pytest.mark.parametrize("guidance", [6.0, 1.0], ids=["cfg", "no_cfg"])
def test_skip_pattern_is_the_published_rule(engine, guidance):
    embs = _embeddings(engine.transformer, engine.scheduler.config, STEPS, 2 if guidance > 1 else 1)
    patterns = []
    for threshold in (0.1, 0.2, 0.3, 0.6):
        cache = consisid_core.TeaCache(threshold)
        _generate(engine, cache, guidance)
        expected = _rule(embs, threshold)
        assert cache.stats["skipped_steps"] == expected, threshold
        assert cache.stats["computed"] + cache.stats["skipped"] == STEPS
        patterns.append(expected)
    assert any(0 < len(p) < STEPS - 2 for p in patterns)  # a mix of computed and skipped steps was tested
    assert len(set(map(tuple, patterns))) > 1


def test_window_never_skips_outside_start_and_end(engine):
    embs = _embeddings(engine.transformer, engine.scheduler.config, STEPS, 2)
    cache = consisid_core.TeaCache(0.3, start_step=4, end_step=9)
    _generate(engine, cache)
    assert cache.stats["skipped_steps"] == _rule(embs, 0.3, 4, 9)
    assert cache.stats["skipped_steps"] and all(4 <= i < 9 for i in cache.stats["skipped_steps"])
    assert _rule(embs, 0.3) != _rule(embs, 0.3, 4, 9)  # the window matters for this threshold


def test_skipped_step_is_patch_embedding_plus_cached_residuals(engine):
    """Step 1 skipped: what reaches the final norm is the patch-embedded input plus (loop output - loop input) of step 0."""
    transformer = engine.transformer
    seen: dict[str, list] = {"embed": [], "final": [], "blocks": []}
    hooks = [
        transformer.patch_embed.register_forward_hook(lambda m, a, out: seen["embed"].append(out.clone())),
        transformer.norm_final.register_forward_hook(lambda m, a, out: seen["final"].append(a[0].clone())),
        transformer.transformer_blocks[0].register_forward_hook(lambda m, a, out: seen["blocks"].append(1)),
    ]
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(2, engine.info.text_len, engine.info.text_embed_dim, generator=gen)
    tokens = _tokens(engine)
    run = consisid_core.TeaCache(10.0).start(3)  # too high to ever compute a middle step
    try:
        with torch.no_grad():
            for t in (999, 966):
                x = torch.randn(2, 3, 8, 4, 6, generator=gen)
                transformer_forward(transformer, x, text, torch.tensor([t, t]), None, tokens, 1.0, run)
    finally:
        for h in hooks:
            h.remove()
    assert len(seen["blocks"]) == 1  # step 1 ran no block
    residual = seen["final"][0] - seen["embed"][0]  # [text; video] tokens, as concatenated before the final norm
    assert residual.abs().max() > 1e-3
    torch.testing.assert_close(seen["final"][1], seen["embed"][1] + residual, rtol=0, atol=1e-6)


def _tokens(engine):
    id_cond, hidden = identity()
    return engine.encode_local(id_cond, hidden).face_tokens


def test_face_injections_once_per_computed_step_never_on_skipped(engine, tiny_model):
    """A model with a perceiver cross-attention after every second block (like the real one)."""
    from diffusers import ConsisIDTransformer3DModel

    torch.manual_seed(1)
    config = {**dict(engine.transformer.config), "num_layers": 4, "cross_attn_interval": 2}
    model = ConsisIDTransformer3DModel.from_config(config).eval().requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    _realistic_time_embedding(model)
    assert len(model.perceiver_cross_attention) == 2
    other = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)
    other.transformer = model
    step = [0]
    calls: list[tuple[str, int]] = []
    for name, modules in (("face", model.perceiver_cross_attention), ("block", model.transformer_blocks)):
        for m in modules:
            m.register_forward_hook(lambda m, a, out, name=name: calls.append((name, step[0])))
    cache = consisid_core.TeaCache(0.3)
    _generate(other, cache, callback=lambda i, n, latents: step.__setitem__(0, i))
    skipped = cache.stats["skipped_steps"]
    assert skipped and cache.stats["computed"] > 2
    for i in range(STEPS):
        faces = sum(1 for name, s in calls if name == "face" and s == i)
        blocks = sum(1 for name, s in calls if name == "block" and s == i)
        assert (faces, blocks) == ((0, 0) if i in skipped else (2, 4)), i


@pytest.mark.parametrize("guidance", [6.0, 1.0], ids=["cfg", "no_cfg"])
def test_two_generations_in_a_row_are_identical(engine, guidance):
    cache = consisid_core.TeaCache(0.3)
    first = _generate(engine, cache, guidance)
    stats = cache.stats
    _generate(engine, cache, guidance, seed=9, steps=7)  # something else in between
    second = _generate(engine, cache, guidance)
    assert stats["skipped"] > 0 and cache.stats == stats
    assert torch.equal(first, second)


@pytest.mark.parametrize("offload", [False, True], ids=["residuals_on_device", "residuals_on_cpu"])
def test_every_memory_mode_gives_the_same_video(tiny_model, engine, offload):
    expected = _generate(engine, consisid_core.TeaCache(0.3))
    for mode in ("none", "model_offload", "sequential_offload"):
        other = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32, memory_mode=mode)
        _realistic_time_embedding(other.transformer)
        cache = consisid_core.TeaCache(0.3, offload=offload)
        assert torch.equal(_generate(other, cache), expected), mode
        assert cache.stats["skipped"] > 0


def test_bad_settings_are_refused_in_one_line():
    for kwargs in (dict(threshold=-0.1), dict(threshold=float("nan")), dict(threshold="fast"),
                   dict(threshold=0.1, mode="aggressive"), dict(threshold=0.1, start_step=5, end_step=5),
                   dict(threshold=0.1, mode="reference", start_step=3)):
        with pytest.raises(UnsupportedInputError):
            consisid_core.TeaCache(**kwargs)


def test_cache_argument_must_be_a_teacache(engine):
    with pytest.raises(UnsupportedInputError, match="TeaCache"):
        _generate(engine, cache=0.15)


# ---- the published TeaCache4ConsisID forward, re-implemented here, on diffusers' ConsisIDPipeline ----------

def _published_forward(self, hidden_states, encoder_hidden_states, timestep, timestep_cond=None,
                       image_rotary_emb=None, attention_kwargs=None, id_cond=None, id_vit_hidden=None,
                       return_dict=True):
    """ConsisIDTransformer3DModel.forward with the TeaCache4ConsisID state machine (state on `self`/its class)."""
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    face = self.local_facial_extractor(id_cond.to(hidden_states), [v.to(hidden_states) for v in id_vit_hidden])
    batch, frames, _, height, width = hidden_states.shape
    emb = self.time_embedding(self.time_proj(timestep).to(hidden_states.dtype), timestep_cond)
    tokens = self.embedding_dropout(self.patch_embed(encoder_hidden_states, hidden_states))
    n_text = encoder_hidden_states.shape[1]
    text, video = tokens[:, :n_text], tokens[:, n_text:]
    if self.cnt == 0 or self.cnt == self.num_steps - 1:
        calc, self.acc = True, 0
    else:
        self.acc += POLY(((emb - self.prev).abs().mean() / self.prev.abs().mean()).cpu().item())
        calc = not self.acc < self.thresh
        if calc:
            self.acc = 0
    self.prev = emb
    self.cnt += 1
    if self.cnt == self.num_steps - 1:
        self.cnt = 0
    self.log.append(calc)
    if calc:
        video0, text0 = video.clone(), text.clone()
        ca = 0
        for i, block in enumerate(self.transformer_blocks):
            video, text = block(hidden_states=video, encoder_hidden_states=text, temb=emb,
                                image_rotary_emb=image_rotary_emb)
            if i % self.cross_attn_interval == 0:
                video = video + self.local_face_scale * self.perceiver_cross_attention[ca](face, video)
                ca += 1
        self.res, self.res_text = video - video0, text - text0
    else:
        video += self.res
        text += self.res_text
    out = self.norm_final(torch.cat([text, video], dim=1))[:, n_text:]
    out = self.proj_out(self.norm_out(out, temb=emb))
    p = self.config.patch_size
    out = out.reshape(batch, frames, height // p, width // p, -1, p, p)
    out = out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
    return Transformer2DModelOutput(sample=out) if return_dict else (out,)


def test_reference_mode_equals_the_published_forward_also_on_a_second_run(tiny_model, monkeypatch):
    from diffusers import ConsisIDPipeline, ConsisIDTransformer3DModel

    ours = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32)
    _realistic_time_embedding(ours.transformer)
    ref_transformer = consisid_core.load_engine(tiny_model, device="cpu", dtype=torch.float32).transformer
    _realistic_time_embedding(ref_transformer)
    threshold = 0.2
    for name, value in dict(forward=_published_forward, cnt=0, num_steps=STEPS, thresh=threshold, acc=0,
                            prev=None, res=None, res_text=None).items():
        monkeypatch.setattr(ConsisIDTransformer3DModel, name, value, raising=False)
    ref_transformer.log = []
    pipe = ConsisIDPipeline.from_pretrained(str(tiny_model), transformer=ref_transformer, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    id_cond, hidden = identity()

    def reference():
        ref_transformer.log = []
        out = pipe(image=face_image(), prompt=PROMPT, id_cond=id_cond, id_vit_hidden=hidden, num_inference_steps=STEPS,
                   guidance_scale=6.0, generator=torch.Generator().manual_seed(3), output_type="pt",
                   max_sequence_length=ours.info.text_len, **SIZE)
        return out.frames[0].permute(0, 2, 3, 1).float(), [i for i, calc in enumerate(ref_transformer.log) if not calc]

    cache, fixed = consisid_core.TeaCache(threshold, mode="reference"), consisid_core.TeaCache(threshold)
    for run in ("first", "second"):
        expected, skipped = reference()
        got = _generate(ours, cache)
        assert cache.stats["skipped_steps"] == skipped, run
        assert (got - expected).abs().max().item() <= 1e-4, run
        if run == "first":
            assert 0 < len(skipped) < STEPS - 2
            assert torch.equal(_generate(ours, fixed), got)  # one fresh generation: the same in both modes
    # the reference's counter leaks into the next run; the fixed mode's first step is always computed
    assert 0 in skipped and 0 not in fixed.stats["skipped_steps"]
