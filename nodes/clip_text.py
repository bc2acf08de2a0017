"""Prompt embeddings from ComfyUI's own T5-XXL (a core CLIP from CLIPLoader), shaped like ConsisID's T5.

ConsisID's T5 input is the prompt's tokens, the end token, then pad tokens up to exactly the model's
text length (226), encoded without an attention mask; a longer prompt is cut to 225 tokens + end.
ComfyUI's T5 tokenizer (CLIPLoader type sd3 or mochi) pads to 77 and never cuts, so the token list is
rebuilt here before encoding. Token weights from ComfyUI's prompt syntax, e.g. "(smiling:1.2)", are kept.
"""

from __future__ import annotations

import logging

T5_KEY = "t5xxl"
T5_END, T5_PAD = 1, 0

_log = logging.getLogger("ConsisID")


class ClipTextError(ValueError):
    """The CLIP input cannot give ConsisID's prompt embeddings; the message says why."""


def _token_id(token):
    value = token[0]
    return int(value) if isinstance(value, int) else None


def fixed_length_tokens(tokens: dict, text_len: int, end: int = T5_END, pad: int = T5_PAD) -> tuple[dict, bool]:
    """ComfyUI's tokenize() output -> the same dict with only T5 tokens, exactly `text_len` long; (dict, cut?)."""
    if T5_KEY not in tokens:
        raise ClipTextError(
            f"the CLIP input has no T5-XXL encoder (its tokenizer gives {sorted(tokens)}); load "
            "t5xxl_fp16.safetensors (or an fp8 T5-XXL) with CLIPLoader type 'sd3', or leave clip unconnected to "
            "use the model folder's own T5"
        )
    body = []
    for batch in tokens[T5_KEY]:
        for token in batch:
            token_id = _token_id(token)
            if token_id == end:
                break
            if token_id == pad:
                continue
            body.append(tuple(token))
    cut = len(body) > text_len - 1
    body = body[: text_len - 1]
    extra = tuple(body[0][2:]) if body else ()
    filler = lambda token_id: (token_id, 1.0) + tuple(0 for _ in extra)  # noqa: E731
    fixed = body + [filler(end)] + [filler(pad)] * (text_len - 1 - len(body))
    return {key: ([fixed] if key == T5_KEY else []) for key in tokens}, cut


def clip_embeddings(clip, text: str, text_len: int, width: int):
    """[1, text_len, width] embeddings of `text` from a ComfyUI CLIP holding T5-XXL."""
    tokens, cut = fixed_length_tokens(clip.tokenize(text), text_len)
    if cut:
        _log.warning("ConsisID: the prompt is longer than %d T5 tokens and was cut: %r", text_len - 1, text[:80])
    cond = clip.encode_from_tokens(tokens)
    if isinstance(cond, (tuple, list)):
        cond = cond[0]
    if cond.ndim != 3 or cond.shape[1] != text_len:
        raise ClipTextError(f"the CLIP input returned embeddings of shape {tuple(cond.shape)}; expected [1, {text_len}, {width}]")
    if cond.shape[-1] != width:
        raise ClipTextError(
            f"the CLIP input gives {cond.shape[-1]}-wide embeddings but this ConsisID model needs {width} (T5-XXL "
            f"v1.1); load a T5-XXL file with CLIPLoader type 'sd3', or leave clip unconnected"
        )
    return cond
