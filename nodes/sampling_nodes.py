"""ConsisID Sampler (denoising, with progress, Cancel and previews) and ConsisID Decode."""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import io
from consisid_core import choices, node_ids

from . import comfy_bridge, prompt_checks, sizes
from .errors import fail, label, reported_as
from .model_cache import REGISTRY
from .types import CATEGORY, Latents, Sockets

_log = logging.getLogger("ConsisID")

PREVIEW_UPSCALE = 8  # latent pixels -> video pixels
NOISE_DEVICES = list(choices.NOISE_DEVICES)
NOISE_TOOLTIP = (
    "Where the seed's noise is drawn. cpu: the same noise for a seed on every machine. gpu: a generator on the "
    "GPU, as the original code's torch.Generator(\"cuda\"), so its seeds give its noise. Either way the GPU "
    "kernels differ between GPU models, so the video can still differ slightly from another machine's."
)


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


SIZE_TOOLTIP = (
    "Set by the pack's size check when width, height or num_frames are wrong, so the error names exactly those "
    "values once; never wired (the canvas hides it)."
)


def sampler_inputs() -> dict[str, io.Input]:
    """The Sampler's required inputs by name, in canvas order (ConsisID Takes reuses them: one definition of the
    seed, steps, cfg and size ranges)."""
    inputs = [
        Sockets.Model.Input("model", tooltip="From ConsisID DiT Loader."),
        Sockets.Text.Input("text", tooltip="From ConsisID Text Encode."),
        Sockets.Global.Input("global_cond", tooltip="The encoded face, from Global Extractor."),
        Sockets.Local.Input("local_cond", tooltip="The identity features, from Local Extractor."),
        io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Random seed; where its noise is drawn is set by noise_device."),
        io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Denoising steps (50 as in the original code)."),
        io.Float.Input("cfg", default=6.0, min=0.0, max=30.0, step=0.1, round=0.01, tooltip=(
            "Classifier-free guidance scale (6.0 as in the original code); 1.0 or less skips the negative "
            "prompt and runs twice as fast.")),
        io.Boolean.Input("use_dynamic_cfg", default=False, tooltip=(
            "CogVideoX's cosine guidance schedule (guidance grows over the steps); off as in the original code.")),
        io.Int.Input("width", default=sizes.FAMILY.native_width, min=sizes.SIZE_MULTIPLE, max=sizes.MAX_SIDE,
                     step=sizes.SIZE_MULTIPLE, tooltip=(
            "Video width. ConsisID-preview has learned position embeddings and only generates 720x480; "
            "other sizes are refused before the run starts.")),
        io.Int.Input("height", default=sizes.FAMILY.native_height, min=sizes.SIZE_MULTIPLE, max=sizes.MAX_SIDE,
                     step=sizes.SIZE_MULTIPLE, tooltip="Video height (480 for ConsisID-preview)."),
        io.Int.Input("num_frames", default=sizes.FAMILY.native_frames, min=sizes.MIN_FRAMES, max=sizes.MAX_FRAMES,
                     step=sizes.FRAME_STEP, tooltip=(
            "Frames to generate: 8k+1 (9, 17, ... 49). 49 frames (6 s at 8 fps) is what the model was "
            "trained on; other counts work with lower quality.")),
    ]
    return {i.id: i for i in inputs}


class ConsisIDSampler(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Sampler"
    LABEL = label(DISPLAY_NAME, node_ids.SAMPLER)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.SAMPLER,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Generates the video latents: CogVideoX DPM sampling of the ConsisID DiT conditioned on the prompt, "
                "the encoded face (global) and the identity tokens (local), drawing random numbers in the original "
                "code's order. noise_device 'gpu' seeds a generator on the GPU like the original code, so its seeds "
                "give its noise; 'cpu' gives the same noise on every machine. Shows progress per step (Cancel stops "
                "within one step) and latent previews when enabled."
            ),
            inputs=[
                *sampler_inputs().values(),
                io.Combo.Input("noise_device", options=NOISE_DEVICES, default="cpu", optional=True, tooltip=NOISE_TOOLTIP),
                Sockets.Cache.Input("cache", optional=True, tooltip=(
                    "Optional step caching from ConsisID TeaCache (faster, slightly less exact).")),
                Sockets.Parallel.Input("parallel", optional=True, tooltip=(
                    "Optional: run the denoising on several GPUs, from ConsisID Parallel Workers.")),
                # V3 nodes get no custom hidden inputs, so the value nodes/prompt_checks.py sets is an optional input
                Sockets.Size.Input(prompt_checks.SIZE_INPUT, optional=True, tooltip=SIZE_TOOLTIP),
            ],
            outputs=[Sockets.Latents.Output("latents", tooltip="The denoised video latents, for ConsisID Decode.")],
        )

    @classmethod
    def validate_inputs(cls, size=None) -> bool | str:
        """One message for a wrong width/height/num_frames, before anything runs (ComfyUI checks their min/max;
        the model is re-checked at run time). `size` comes from nodes/prompt_checks.py; ComfyUI files a failed
        check once per argument, so this takes that one input only."""
        if not isinstance(size, dict):
            return True
        problem = sizes.check(size.get("width"), size.get("height"), size.get("num_frames"), ranges=False)
        return True if problem is None else f"{cls.LABEL}: {problem}"

    @classmethod
    def execute(cls, model, text, global_cond, local_cond, seed, steps, cfg, use_dynamic_cfg, width, height,
                num_frames, noise_device="cpu", cache=None, parallel=None, size=None) -> io.NodeOutput:
        with reported_as(cls.LABEL):
            problem = sizes.check(width, height, num_frames, infos={})
            if problem is not None:
                raise fail(cls.LABEL, problem)
            engine = model.get()
            frames = engine.check_settings(height, width, num_frames, snap_frames=False)
            cls._check_text(engine, text)
            if engine.placement.mode != "none":  # face networks and onnxruntime arenas leave the GPU first
                REGISTRY.offload_faces()
            conditioning = global_cond.conditioning
            if global_cond.encoded_by != model.settings or (conditioning.height, conditioning.width) != (height, width):
                conditioning = engine.encode_global(global_cond.face_image, global_cond.landmark_image, height, width)
            local = engine.encode_local(local_cond.id_cond, local_cond.id_vit_hidden, local_cond.face_scale)
            settings = dict(num_frames=frames, num_inference_steps=int(steps), guidance_scale=float(cfg),
                            use_dynamic_cfg=bool(use_dynamic_cfg), seed=int(seed), snap_frames=False,
                            noise_device=noise_device, cache=cache)
            if parallel is None:
                video = engine.denoise(text.conditioning, conditioning, local,
                                       callback=step_callback(model, engine, int(steps)), **settings)
            else:  # the worker group denoises; progress and Cancel are forwarded
                bar = comfy_bridge.progress_bar(int(steps))
                video = parallel.pool().denoise(text.conditioning, conditioning, local, progress=bar.update_absolute,
                                                should_cancel=comfy_bridge.throw_if_interrupted, **settings)
            if cache is not None:
                _log.info("%s: %s", cls.LABEL, cache.summary())
                return io.NodeOutput(Latents(video, model.settings), ui={"teacache": [cache.stats]})
        return io.NodeOutput(Latents(video, model.settings))

    @classmethod
    def _check_text(cls, engine, text) -> None:
        embeds = text.conditioning.prompt_embeds
        width = engine.info.text_embed_dim
        if embeds.shape[1] != engine.info.text_len or embeds.shape[-1] != width:
            raise fail(cls.LABEL, f"the text embeddings are {tuple(embeds.shape)} but this model needs "
                                   f"[1, {engine.info.text_len}, {width}]; encode the prompt with this model's "
                                   "ConsisID Text Encode.")


class ConsisIDDecode(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Decode"
    LABEL = label(DISPLAY_NAME, node_ids.DECODE)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.DECODE,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Decodes the video latents with the model's CogVideoX VAE into frames (an IMAGE batch, one image per "
                "frame) for VHS Video Combine (8 fps) or Create Video. VAE tiling keeps the decode within a few GB."
            ),
            inputs=[
                Sockets.Model.Input("model", tooltip="From ConsisID DiT Loader (its VAE decodes)."),
                Sockets.Latents.Input("latents", tooltip="From ConsisID Sampler."),
                io.Boolean.Input("vae_tiling", default=True, tooltip=(
                    "Decode in overlapping tiles: the peak memory drops from about 20 GB to a few GB at 720x480 "
                    "with a barely visible difference. Turn off only with plenty of GPU memory.")),
                io.Boolean.Input("vae_slicing", default=False, tooltip=(
                    "Decode batch items one at a time (only matters for batches; a single video is one item).")),
            ],
            outputs=[io.Image.Output("frames", tooltip=(
                "The video frames [frames, height, width, 3]; ConsisID's natural frame rate is 8 fps."))],
        )

    @classmethod
    def execute(cls, model, latents, vae_tiling, vae_slicing) -> io.NodeOutput:
        with reported_as(cls.LABEL):
            engine = model.get()
            channels = latents.video.latents.shape[2]
            if channels != engine.info.latent_channels:
                raise fail(cls.LABEL, f"the latents have {channels} channels but this model's VAE takes "
                                      f"{engine.info.latent_channels}; decode with the model that sampled them.")
            comfy_bridge.throw_if_interrupted()
            frames = engine.decode(latents.video, tiling=bool(vae_tiling), slicing=bool(vae_slicing))
            expected = (latents.video.height, latents.video.width)
            if tuple(frames.shape[1:3]) != expected:
                raise fail(cls.LABEL, f"the VAE decoded {frames.shape[2]}x{frames.shape[1]} frames instead of "
                                      f"{expected[1]}x{expected[0]} (its tile sizes do not fit this video size); "
                                      "turn vae_tiling off.")
        return io.NodeOutput(frames)
