"""T5 prompt encoding exactly as the reference: pad to the model's text length, no attention mask."""

from __future__ import annotations

import torch

from ..errors import UnsupportedInputError
from ..notices import warn


def encode_prompt(tokenizer, text_encoder, prompt: str, max_len: int, device: torch.device,
                  dtype: torch.dtype) -> torch.Tensor:
    """[1, max_len, dim] embeddings of one prompt; a prompt longer than max_len tokens is cut with a warning."""
    if not isinstance(prompt, str):
        raise UnsupportedInputError(f"prompt must be text; got {type(prompt).__name__}")
    ids = tokenizer(
        [prompt], padding="max_length", max_length=max_len, truncation=True, add_special_tokens=True,
        return_tensors="pt",
    ).input_ids
    full = tokenizer([prompt], padding="longest", return_tensors="pt", verbose=False).input_ids
    if full.shape[-1] > ids.shape[-1] or (full.shape[-1] == ids.shape[-1] and not torch.equal(full, ids)):
        dropped = tokenizer.batch_decode(full[:, max_len - 1 : -1])[0]
        warn(f"the prompt is longer than the model's {max_len} tokens and was cut; dropped: {_preview(dropped)}")
    embeds = text_encoder(ids.to(device))[0]
    return embeds.to(dtype=dtype, device=device)


def _preview(text: str, limit: int = 80) -> str:
    """The start of a long text and how much more there is, for one-line messages."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text) - limit} more characters)"
