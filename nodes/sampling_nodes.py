"""ConsisID Sampler (denoising, with progress, Cancel and previews) and ConsisID Decode."""

from __future__ import annotations

import logging

from . import comfy_bridge, sizes
from .errors import fail, label, reported_as
from .types import CATEGORY, GLOBAL, LATENTS, LOCAL, MODEL, TEXT, Latents

_log = logging.getLogger("ConsisID")

PREVIEW_UPSCALE = 8  # latent pixels -> video pixels


def step_callback(handle, engine, steps: int):
    """A denoise callback that ticks ComfyUI's progress bar (which also raises on Cancel) with an optional preview."""
    bar = comfy_bridge.progress_bar(steps)
    enabled, max_size = comfy_bridge.preview_settings()
    rgb_map = None
    if enabled:
        try:
            if handle.preview_map is None:
                from consisid_core.engine.preview import fit_latent_rgb_map

                handle.preview_map = fit_latent_rgb_map(engine)
            rgb_map = handle.preview_map
        except Exception:  # a preview must never stop a generation
            _log.exception("ConsisID: latent previews are unavailable for this model")

    def callback(step: int, total: int, latents) -> None:
        preview = None
        if rgb_map is not None:
            preview = ("JPEG", _preview_image(rgb_map.to_rgb(latents), max_size), max_size)
        bar.update_absolute(step, total, preview)

    return callback


def _preview_image(rgb, max_size: int):
    from PIL import Image

    image = Image.fromarray(rgb)
    scale = max(1, min(PREVIEW_UPSCALE, max_size // max(image.size)))
    return image.resize((image.width * scale, image.height * scale), Image.BILINEAR) if scale > 1 else image


class ConsisIDSampler:
    DISPLAY_NAME = "ConsisID Sampler"
    LABEL = label(DISPLAY_NAME, "ConsisIDSampler")
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Generates the video latents: CogVideoX DPM sampling of the ConsisID DiT conditioned on the prompt, the "
        "encoded face (global) and the identity tokens (local). The seed reproduces the original code's output "
        "exactly. Shows progress per step (Cancel stops within one step) and latent previews when enabled."
    )
    RETURN_TYPES = (LATENTS,)
    RETURN_NAMES = ("latents",)
    OUTPUT_TOOLTIPS = ("The denoised video latents, for ConsisID Decode.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From ConsisID DiT Loader."}),
                "text": (TEXT, {"tooltip": "From ConsisID Text Encode."}),
                "global_cond": (GLOBAL, {"tooltip": "The encoded face, from Global Extractor."}),
                "local_cond": (LOCAL, {"tooltip": "The identity features, from Local Extractor."}),
                "seed": ("INT", {"default": 42, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Random seed (CPU generator, so a seed gives the same video on any machine)."}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 1000, "tooltip": "Denoising steps (50 as in the original code)."}),
                "cfg": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip": (
                    "Classifier-free guidance scale (6.0 as in the original code); 1.0 or less skips the negative "
                    "prompt and runs twice as fast.")}),
                "use_dynamic_cfg": ("BOOLEAN", {"default": False, "tooltip": (
                    "CogVideoX's cosine guidance schedule (guidance grows over the steps); off as in the original code.")}),
                "width": ("INT", {"default": 720, "min": 16, "max": sizes.MAX_SIDE, "step": 16, "tooltip": (
                    "Video width. ConsisID-preview has learned position embeddings and only generates 720x480; "
                    "other sizes are refused before the run starts.")}),
                "height": ("INT", {"default": 480, "min": 16, "max": sizes.MAX_SIDE, "step": 16, "tooltip": (
                    "Video height (480 for ConsisID-preview).")}),
                "num_frames": ("INT", {"default": 49, "min": sizes.MIN_FRAMES, "max": sizes.MAX_FRAMES,
                                       "step": sizes.FRAME_STEP, "tooltip": (
                    "Frames to generate: 8k+1 (9, 17, ... 49). 49 frames (6 s at 8 fps) is what the model was "
                    "trained on; other counts work with lower quality.")}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, width, height, num_frames):
        """Refuse sizes no installed checkpoint can generate, before anything runs (the model is re-checked at run time)."""
        problem = sizes.check(width, height, num_frames)
        return True if problem is None else f"{cls.LABEL}: {problem}"

    def sample(self, model, text, global_cond, local_cond, seed, steps, cfg, use_dynamic_cfg, width, height, num_frames):
        with reported_as(self.LABEL):
            problem = sizes.check(width, height, num_frames, infos={})
            if problem is not None:
                raise fail(self.LABEL, problem)
            engine = model.get()
            frames = engine.check_settings(height, width, num_frames, frames_policy="error")
            self._check_text(engine, text)
            comfy_bridge.free_comfy_memory()  # e.g. a core T5 used for the prompt: the DiT needs the room
            conditioning = global_cond.conditioning
            if global_cond.encoded_by != model.settings or (conditioning.height, conditioning.width) != (height, width):
                conditioning = engine.encode_global(global_cond.face_image, global_cond.landmark_image, height, width)
            local = engine.encode_local(local_cond.id_cond, local_cond.id_vit_hidden, local_cond.face_scale)
            video = engine.denoise(
                text.conditioning, conditioning, local, num_frames=frames, num_inference_steps=int(steps),
                guidance_scale=float(cfg), use_dynamic_cfg=bool(use_dynamic_cfg), seed=int(seed),
                callback=step_callback(model, engine, int(steps)), frames_policy="error",
            )
        return (Latents(video, model.settings),)

    def _check_text(self, engine, text) -> None:
        embeds = text.conditioning.prompt_embeds
        width = engine.info.text_embed_dim
        if embeds.shape[1] != engine.info.text_len or embeds.shape[-1] != width:
            raise fail(self.LABEL, f"the text embeddings are {tuple(embeds.shape)} but this model needs "
                                   f"[1, {engine.info.text_len}, {width}]; encode the prompt with this model's "
                                   "ConsisID Text Encode.")


class ConsisIDDecode:
    DISPLAY_NAME = "ConsisID Decode"
    LABEL = label(DISPLAY_NAME, "ConsisIDDecode")
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Decodes the video latents with the model's CogVideoX VAE into frames (an IMAGE batch, one image per "
        "frame) for VHS Video Combine (8 fps) or Create Video. VAE tiling keeps the decode within a few GB."
    )
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The video frames [frames, height, width, 3]; ConsisID's natural frame rate is 8 fps.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From ConsisID DiT Loader (its VAE decodes)."}),
                "latents": (LATENTS, {"tooltip": "From ConsisID Sampler."}),
                "vae_tiling": ("BOOLEAN", {"default": True, "tooltip": (
                    "Decode in overlapping tiles: the peak memory drops from about 20 GB to a few GB at 720x480 "
                    "with a barely visible difference. Turn off only with plenty of GPU memory.")}),
                "vae_slicing": ("BOOLEAN", {"default": False, "tooltip": (
                    "Decode batch items one at a time (only matters for batches; a single video is one item).")}),
            }
        }

    def decode(self, model, latents, vae_tiling, vae_slicing):
        with reported_as(self.LABEL):
            engine = model.get()
            channels = latents.video.latents.shape[2]
            if channels != engine.info.latent_channels:
                raise fail(self.LABEL, f"the latents have {channels} channels but this model's VAE takes "
                                       f"{engine.info.latent_channels}; decode with the model that sampled them.")
            comfy_bridge.throw_if_interrupted()
            frames = engine.decode(latents.video, tiling=bool(vae_tiling), slicing=bool(vae_slicing))
            expected = (latents.video.height, latents.video.width)
            if tuple(frames.shape[1:3]) != expected:
                raise fail(self.LABEL, f"the VAE decoded {frames.shape[2]}x{frames.shape[1]} frames instead of "
                                       f"{expected[1]}x{expected[0]} (its tile sizes do not fit this video size); "
                                       "turn vae_tiling off.")
        return (frames,)
