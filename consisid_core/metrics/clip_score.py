"""CLIPScore with openai/clip-vit-base-patch32 from a local transformers folder.

Pre-processing is our own and equals the PIL path of transformers' CLIPImageProcessor: bicubic resize of
the short side to 224 (long side truncated), centre crop, /255, CLIP mean/std. Score = 100-scaled cosine
(`logits_per_image`), one per frame.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ModelFilesError

_PIL_RESAMPLE = {0: Image.NEAREST, 1: Image.LANCZOS, 2: Image.BILINEAR, 3: Image.BICUBIC, 4: Image.BOX, 5: Image.HAMMING}


def _side(value, key: str) -> int:
    return int(value[key] if isinstance(value, dict) else value)


class ClipPreprocess:
    """Frames (RGB or BGR uint8 HxWx3) -> pixel_values [N,3,S,S] float32."""

    def __init__(self, config: dict) -> None:
        size = config.get("size", {"shortest_edge": 224})
        self.short = _side(size, "shortest_edge")
        crop = config.get("crop_size", self.short)
        self.crop_h, self.crop_w = _side(crop, "height"), _side(crop, "width")
        self.resample = _PIL_RESAMPLE[int(config.get("resample", 3))]
        self.scale = float(config.get("rescale_factor", 1 / 255))
        self.mean = np.asarray(config.get("image_mean", [0.48145466, 0.4578275, 0.40821073]), np.float32)
        self.std = np.asarray(config.get("image_std", [0.26862954, 0.26130258, 0.27577711]), np.float32)

    def resize(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        short, long = (h, w) if h <= w else (w, h)
        new_short, new_long = self.short, int(self.short * long / short)
        new_h, new_w = (new_short, new_long) if h <= w else (new_long, new_short)
        if (new_h, new_w) == (h, w):
            return image
        return np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=self.resample))

    def center_crop(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if h < self.crop_h or w < self.crop_w:  # pad with zeros like the reference processor
            canvas = np.zeros((max(h, self.crop_h), max(w, self.crop_w), 3), image.dtype)
            top, left = (canvas.shape[0] - h) // 2, (canvas.shape[1] - w) // 2
            canvas[top:top + h, left:left + w] = image
            image, (h, w) = canvas, canvas.shape[:2]
        top, left = int((h - self.crop_h) / 2), int((w - self.crop_w) / 2)
        return image[top:top + self.crop_h, left:left + self.crop_w]

    def __call__(self, frames: list[np.ndarray]) -> torch.Tensor:
        out = []
        for frame in frames:
            image = self.center_crop(self.resize(np.ascontiguousarray(frame)))
            unit = (image.astype(np.float64) * self.scale).astype(np.float32)
            out.append(((unit - self.mean) / self.std).transpose(2, 0, 1))
        return torch.from_numpy(np.ascontiguousarray(np.stack(out)))


class ClipScorer:
    """CLIP ViT-B/32 text-image similarity per frame (transformers CLIPModel, safetensors only)."""

    def __init__(self, folder: str | os.PathLike, device: str | torch.device = "cpu") -> None:
        from transformers import CLIPModel, CLIPTokenizer

        folder = Path(folder)
        try:
            self.model = CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
            self.tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
            config = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelFilesError(f"Cannot load CLIP from {folder}: {exc}. Re-download openai/clip-vit-base-patch32 "
                                  "(https://huggingface.co/openai/clip-vit-base-patch32) into that folder.") from exc
        self.model.requires_grad_(False).to(device)
        self.preprocess = ClipPreprocess(config)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def scores(self, frames: list[np.ndarray], prompt: str) -> np.ndarray:
        """`logits_per_image` for each frame against the prompt (truncated to 77 tokens)."""
        tokens = self.tokenizer([prompt], padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        pixels = self.preprocess(frames).to(self.device)
        out = self.model(input_ids=tokens["input_ids"].to(self.device),
                         attention_mask=tokens["attention_mask"].to(self.device), pixel_values=pixels)
        return out.logits_per_image[:, 0].float().cpu().numpy()
