"""CLIPScore: our pre-processing and scoring against the script's `CLIPProcessor` + `CLIPModel` call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from consisid_core.metrics.clip_score import ClipScorer

from metrics_tiny_clip import write_clip

PROMPT = "The video shows a man in a space suit standing in front of a flag, the camera slowly pans to the right"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip-vit-base-patch32")


def _script_logits(folder, frames, prompt, **processor_kwargs):
    """What get_clipscore.py does: processor(text, images=frames, padding, truncation) -> model -> logits_per_image."""
    from transformers import CLIPModel, CLIPProcessor

    processor = CLIPProcessor.from_pretrained(folder, **processor_kwargs)
    model = CLIPModel.from_pretrained(folder).eval()
    inputs = processor(text=prompt, images=frames, return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        return inputs, model(**inputs).logits_per_image[:, 0].numpy(), type(processor.image_processor).__name__


def _frames(photos):
    # a portrait, a landscape and a square frame, in OpenCV's BGR order like the script reads them
    return [np.ascontiguousarray(photos[k][:, :, ::-1]) for k in ("astronaut", "coffee", "t1")]


def _compare(clip_dir, photos, **kwargs):
    frames = _frames(photos)
    inputs, expected, backend = _script_logits(clip_dir, frames, PROMPT, **kwargs)
    ours = ClipScorer(clip_dir)
    pixel_diff = (ours.preprocess(frames) - inputs["pixel_values"]).abs().max().item()
    tokens = ours.tokenizer([PROMPT], padding=True, truncation=True, max_length=77, return_tensors="pt")
    got = ours.scores(frames, PROMPT)
    score_diff = float(np.abs(got - expected).max())
    print(f"CLIP vs script ({backend}): pixel_values max |diff| = {pixel_diff:.2e}, "
          f"logits_per_image max |diff| = {score_diff:.2e}")
    assert torch.equal(tokens["input_ids"], inputs["input_ids"])
    return pixel_diff, score_diff


def test_clip_preprocessing_matches_the_script_pil_path(clip_dir, photos):
    from transformers import CLIPImageProcessor

    # the PIL processor is what transformers 4.x (the script's era) used; in 5.x it is CLIPImageProcessorPil
    pil_cls = getattr(__import__("transformers"), "CLIPImageProcessorPil", None)
    kwargs = {"image_processor": pil_cls.from_pretrained(clip_dir)} if pil_cls else {"use_fast": False}
    assert CLIPImageProcessor is not None
    pixel_diff, score_diff = _compare(clip_dir, photos, **kwargs)
    assert pixel_diff < 1e-5 and score_diff < 1e-4


@pytest.mark.reference
def test_clip_preprocessing_matches_the_script_default_processor(clip_dir, photos):
    """In an environment with torchvision, CLIPProcessor picks its torchvision backend by default."""
    pixel_diff, score_diff = _compare(clip_dir, photos)
    assert pixel_diff < 0.05 and score_diff < 0.05


def test_long_prompts_are_cut_at_77_tokens(clip_dir, photos):
    ours = ClipScorer(clip_dir)
    frames = _frames(photos)[:1]
    long_prompt = PROMPT + " and then" * 200
    ids = ours.tokenizer([long_prompt], truncation=True, max_length=77)["input_ids"][0]
    assert len(ids) == 77
    assert np.isfinite(ours.scores(frames, long_prompt)).all()


def test_bgr_and_rgb_frames_score_differently(clip_dir, photos):
    ours = ClipScorer(clip_dir)
    rgb = [photos["astronaut"]]
    assert abs(ours.scores(rgb, PROMPT)[0] - ours.scores([rgb[0][:, :, ::-1].copy()], PROMPT)[0]) > 1e-4
