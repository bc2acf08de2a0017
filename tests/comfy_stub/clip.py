"""Stand-in for a core `comfy.sd.CLIP` loaded by CLIPLoader type 'sd3' with only a T5 file.

Tokenizing follows ComfyUI 0.8's SD3Tokenizer: keys "g", "l" (CLIP tokens) and "t5xxl"; the T5 part is a
list of batches of (token id, weight) pairs, no start token, the end token 1, padded with 0 to at least
77 and never cut. Encoding runs only the T5 tokens, without an attention mask (sd3 default), like
SD3ClipModel does when no CLIP-L/G is loaded. The T5 here is any HF tokenizer + T5 encoder pair.
"""

from __future__ import annotations

import torch

MIN_LENGTH = 77


class T5OnlySD3Clip:
    def __init__(self, tokenizer, encoder, end_token: int = 1, pad_token: int = 0) -> None:
        self.hf_tokenizer = tokenizer
        self.encoder = encoder
        self.end_token, self.pad_token = end_token, pad_token
        self.encoded: list[list[int]] = []

    def tokenize(self, text, return_word_ids=False, **kwargs):
        ids = self.hf_tokenizer(text, add_special_tokens=False).input_ids
        t5 = [(i, 1.0) for i in ids] + [(self.end_token, 1.0)]
        t5 += [(self.pad_token, 1.0)] * max(0, MIN_LENGTH - len(t5))
        clip_tokens = [[(49406, 1.0)] + [(320, 1.0)] * 75 + [(49407, 1.0)]]
        return {"g": clip_tokens, "l": clip_tokens, "t5xxl": [t5]}

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        if tokens.get("l") or tokens.get("g"):
            raise AssertionError("a T5-only SD3 CLIP would mix CLIP-L/G tokens into the output")
        batch = tokens["t5xxl"]
        if any(w != 1.0 for b in batch for _, w, *rest in b):
            raise NotImplementedError("the stand-in only encodes unweighted prompts")
        ids = torch.tensor([[t[0] for b in batch for t in b]])
        self.encoded.append(ids[0].tolist())
        with torch.no_grad():
            cond = self.encoder(ids)[0].float()
        pooled = torch.zeros((1, 768 + 1280))
        if return_pooled:
            return cond, pooled
        return cond


class NotT5Clip:
    """A CLIP whose tokenizer has no T5 (e.g. SD1.5 CLIP-L)."""

    def tokenize(self, text, return_word_ids=False, **kwargs):
        return {"l": [[(49406, 1.0), (49407, 1.0)]]}

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        raise AssertionError("must not be called")
