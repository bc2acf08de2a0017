"""ConsisIDEngine: the whole generation, and each stage of it for the node graph."""

from __future__ import annotations

import contextlib

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..cancel import per_call
from ..errors import UnsupportedInputError
from ..model_info import ModelInfo
from ..runtime import RuntimeSetting, generator_device, noise_generator
from ..runtime.offload import Placement
from . import checks, memory_estimate
from .conditioning import encode_posterior, image_latents, keypoint_image, preprocess, to_pil_rgb
from .decode import decode_latents
from .denoise import StepCallback, denoise_loop
from .joint_attention import attention_backend
from .rotary import rotary_embeddings
from .stages import GlobalConditioning, LatentVideo, LocalConditioning, TextConditioning
from .text import encode_prompt
from .teacache import TeaCache, check_cache
from .transformer_forward import face_tokens


@dataclass
class ConsisIDEngine:
    """Loaded ConsisID components plus where they live; see `generate` and the stage methods."""

    transformer: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    info: ModelInfo
    placement: Placement
    dtype: torch.dtype
    source: str = ""
    attention: str = "sdpa"
    runtime: RuntimeSetting | None = None  # the setting it was loaded with (noise device default, face dtype...)
    should_cancel: Callable[[], object] | None = field(default=None, repr=False)  # see consisid_core.cancel
    parallel: Any = field(default=None, repr=False)  # a consisid_core.parallel.ParallelPlan on a multi-rank run
    loras: dict = field(default_factory=dict)  # name -> (file, strength) of the LoRAs on the transformer
    _processor: Any = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def video_processor(self):
        if self._processor is None:
            from diffusers.video_processor import VideoProcessor

            self._processor = VideoProcessor(vae_scale_factor=self.info.vae_spatial)
        return self._processor

    def make_generator(self, seed: int, noise_device: str | None = None) -> torch.Generator:
        """A seeded generator: on the CPU ('cpu', the same noise on every machine) or on the engine's device
        ('gpu', the reference's torch.Generator("cuda")); None = the runtime setting's choice."""
        if noise_device is None:
            noise_device = self.runtime.noise_device if self.runtime is not None else "cpu"
        return noise_generator(generator_device(noise_device, self.device), seed)

    # ---- settings -------------------------------------------------------------------------------
    def check_settings(self, height: int, width: int, num_frames: int, *, snap_frames: bool = True) -> int:
        """Validate size and frame count for this checkpoint; returns the frame count to use.

        A frame count that does not decode exactly is snapped with a warning, or refused when `snap_frames` is False.
        """
        checks.check_size(self.info, height, width)
        return checks.resolve_frames(self.info, num_frames, snap=snap_frames)

    # ---- stages ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_text(self, prompt: str, negative_prompt: str | None = "", *, with_negative: bool = True) -> TextConditioning:
        """T5 embeddings of the prompt, and of the negative prompt unless `with_negative` is False (no CFG)."""
        need = memory_estimate.text_encode(self.info.text_len, self.text_encoder.config)
        with self.placement.use(self.text_encoder, memory_required=need), per_call(self.text_encoder, self.should_cancel):
            positive = encode_prompt(self.tokenizer, self.text_encoder, prompt, self.info.text_len, self.device, self.dtype)
            negative = None
            if with_negative:
                negative = encode_prompt(
                    self.tokenizer, self.text_encoder, negative_prompt or "", self.info.text_len, self.device, self.dtype
                )
        return TextConditioning(positive, negative, prompt, negative_prompt or "")

    def text_from_embeddings(self, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor | None) -> TextConditioning:
        """Wrap externally computed T5 embeddings (e.g. ComfyUI's CLIPLoader T5), checking their shape."""
        expected = self.info.text_len
        for name, emb in (("prompt", prompt_embeds), ("negative prompt", negative_embeds)):
            if emb is None:
                continue
            if emb.ndim != 3 or emb.shape[0] != 1 or emb.shape[1] != expected:
                raise UnsupportedInputError(
                    f"{name} embeddings must be [1, {expected}, dim] (T5 padded to {expected} tokens); got {tuple(emb.shape)}"
                )
        cast = lambda e: None if e is None else e.to(self.device, self.dtype)  # noqa: E731
        return TextConditioning(cast(prompt_embeds), cast(negative_embeds))

    @torch.inference_mode()
    def encode_global(self, image, kps_cond=None, height: int | None = None, width: int | None = None) -> GlobalConditioning:
        """VAE posterior of the face image stretched to the output size (and of the keypoint image if `is_kps`).

        `kps_cond` is 5 (x, y) points in the face image's frame, or a ready keypoint image; it is ignored
        unless the checkpoint's config has `is_kps`, exactly as the reference.
        """
        height = self.info.native_height if height is None else height
        width = self.info.native_width if width is None else width
        checks.check_size(self.info, height, width)
        face = to_pil_rgb(image)
        face_tensor = preprocess(self.video_processor, face, height, width).to(self.device, dtype=self.dtype)
        kps_tensor = None
        if self.info.is_kps and kps_cond is not None:
            if isinstance(kps_cond, (list, tuple)) or (hasattr(kps_cond, "shape") and tuple(kps_cond.shape) == (5, 2)):
                kps_img = keypoint_image(face, kps_cond)
            else:
                kps_img = to_pil_rgb(kps_cond)
            kps_tensor = preprocess(self.video_processor, kps_img, height, width).to(self.device, dtype=self.dtype)
        need = memory_estimate.vae_encode(self.vae.config, height, width, self.dtype)
        with self.placement.use(self.vae, memory_required=need), per_call(self.vae.encoder, self.should_cancel):
            image_params = encode_posterior(self.vae, face_tensor)
            kps_params = encode_posterior(self.vae, kps_tensor) if kps_tensor is not None else None
        return GlobalConditioning(image_params, kps_params, height, width, face_tensor)

    @torch.inference_mode()
    def encode_local(self, id_cond: torch.Tensor, id_vit_hidden: Sequence[torch.Tensor],
                     face_scale: float | None = None) -> LocalConditioning:
        """Face tokens from ArcFace+EVA features (the transformer's local facial extractor), once per generation."""
        if id_cond is None or id_vit_hidden is None:
            raise UnsupportedInputError("identity features are missing: pass id_cond and id_vit_hidden from the face pipeline")
        lfe = self.transformer.local_facial_extractor
        if id_cond.ndim != 2 or id_cond.shape[-1] != lfe.id_embedding_mapping[0].in_features:
            raise UnsupportedInputError(
                f"id_cond must be [1, {lfe.id_embedding_mapping[0].in_features}]; got {tuple(id_cond.shape)} "
                "(were the face features made for another model?)"
            )
        if len(id_vit_hidden) < lfe.num_scale:
            raise UnsupportedInputError(f"id_vit_hidden must hold {lfe.num_scale} tensors; got {len(id_vit_hidden)}")
        with self.placement.use_part(self.transformer, lfe, memory_required=memory_estimate.FLOOR), \
                per_call(lfe, self.should_cancel):
            tokens = face_tokens(self.transformer, id_cond, list(id_vit_hidden), self.dtype, self.device)
        scale = self.info.face_scale if face_scale is None else float(face_scale)
        return LocalConditioning(tokens, scale)

    @torch.inference_mode()
    def denoise(
        self,
        text: TextConditioning,
        global_cond: GlobalConditioning,
        local: LocalConditioning,
        num_frames: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        use_dynamic_cfg: bool = False,
        seed: int = 42,
        callback: StepCallback | None = None,
        generator: torch.Generator | None = None,
        *,
        snap_frames: bool = True,
        noise_device: str | None = None,
        cache: TeaCache | None = None,
    ) -> LatentVideo:
        """Check the settings (see `check_settings`), then sample the video latents.

        The noise comes from `generator`, else from a generator seeded with `seed` on `noise_device`.
        `cache`: a `TeaCache` to skip the block loop on some steps (its `stats` report which).
        `num_frames` None: the checkpoint's native count."""
        num_frames = self.info.native_frames if num_frames is None else num_frames
        num_frames = self.check_settings(global_cond.height, global_cond.width, num_frames, snap_frames=snap_frames)
        checks.check_steps_and_guidance(num_inference_steps, guidance_scale)
        generator = generator or self.make_generator(seed, noise_device)
        return self._sample(text, global_cond, local, num_frames, num_inference_steps, guidance_scale,
                            use_dynamic_cfg, seed, callback, generator, check_cache(cache))

    def _sample(
        self,
        text: TextConditioning,
        global_cond: GlobalConditioning,
        local: LocalConditioning,
        num_frames: int,
        num_inference_steps: int,
        guidance_scale: float,
        use_dynamic_cfg: bool,
        seed: int,
        callback: StepCallback | None,
        generator: torch.Generator | None,
        cache: TeaCache | None = None,
    ) -> LatentVideo:
        """Sample the face latent, draw the initial noise and run the loop, in the reference's random order."""
        from diffusers import CogVideoXDPMScheduler

        height, width = global_cond.height, global_cond.width
        do_cfg = guidance_scale > 1.0
        if do_cfg and text.negative_embeds is None:
            raise UnsupportedInputError("guidance_scale > 1 needs negative prompt embeddings: encode the text with the same cfg")
        prompt_embeds = torch.cat([text.negative_embeds, text.prompt_embeds]) if do_cfg else text.prompt_embeds
        dtype = self.dtype
        prompt_embeds = prompt_embeds.to(self.device, dtype)  # a no-op for stage outputs; guards hand-made ones

        generator = generator or self.make_generator(seed)
        scheduler = CogVideoXDPMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(num_inference_steps, device=self.device)
        latent_frames = self.info.latent_frames(num_frames)
        cond = image_latents(
            global_cond.image_posterior.to(self.device, dtype), None if global_cond.kps_posterior is None else
            global_cond.kps_posterior.to(self.device, dtype), latent_frames, self.info.vae_scaling, dtype, generator,
        )
        from diffusers.utils.torch_utils import randn_tensor

        shape = (1, latent_frames, self.info.latent_channels, height // self.info.vae_spatial, width // self.info.vae_spatial)
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype) * scheduler.init_noise_sigma
        rotary = rotary_embeddings(self.info, height, width, latent_frames, self.device) if self.info.rotary_positions else None
        parallel = self.parallel
        if parallel is not None:
            p = self.transformer.config.patch_size
            parallel.config.check_tokens(prompt_embeds.shape[1], (shape[3] // p) * (shape[4] // p), do_cfg)
            rotary = parallel.shard_rotary(rotary, latent_frames)  # once per generation, not per step
        need = memory_estimate.dit_step(self.info, self.transformer.config, height, width, num_frames, do_cfg, dtype,
                                        self.attention, self.device)
        with self.placement.use(self.transformer, memory_required=need), \
                attention_backend(self.transformer, self.attention), \
                per_call(self.transformer.patch_embed, self.should_cancel), \
                (parallel.attention(self.transformer) if parallel is not None else contextlib.nullcontext()):
            latents = denoise_loop(
                self.transformer, scheduler, latents, cond, prompt_embeds, rotary,
                local.face_tokens.to(self.device, dtype), local.face_scale, num_inference_steps, guidance_scale,
                use_dynamic_cfg, generator, callback, cache, parallel,
            )
        return LatentVideo(latents, height, width, num_frames)

    @torch.inference_mode()
    def decode(self, video: LatentVideo, tiling: bool = False, slicing: bool = False) -> torch.Tensor:
        """Frames [F, H, W, 3] float32 in [0, 1]."""
        need = memory_estimate.vae_decode(self.vae.config, video.height, video.width, self.dtype, tiling)
        with self.placement.use(self.vae, memory_required=need), \
                per_call(self.vae.decoder, self.should_cancel):  # each chunk/tile
            frames = decode_latents(
                self.vae, self.video_processor, video.latents.to(self.device, self.dtype), self.info.vae_scaling, tiling,
                slicing,
            )
        return frames

    # ---- everything -----------------------------------------------------------------------------
    def generate(
        self,
        prompt: str,
        negative_prompt: str = "",
        image=None,
        id_cond: torch.Tensor | None = None,
        id_vit_hidden: Sequence[torch.Tensor] | None = None,
        kps_cond=None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        use_dynamic_cfg: bool = False,
        seed: int = 42,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        vae_tiling: bool = False,
        vae_slicing: bool = False,
        face_scale: float | None = None,
        noise_device: str | None = None,
        cache: TeaCache | None = None,
    ) -> torch.Tensor:
        """Prompt + face image + identity features -> frames [F, H, W, 3] float32 in [0, 1].

        `noise_device` 'cpu' or 'gpu' (see `make_generator`); None = the runtime setting's choice.
        Sizes left as None are the checkpoint's native ones (ModelInfo)."""
        if image is None:
            raise UnsupportedInputError("image (the aligned face from the face pipeline) is required")
        info = self.info
        height = info.native_height if height is None else height
        width = info.native_width if width is None else width
        num_frames = self.check_settings(height, width, info.native_frames if num_frames is None else num_frames)
        checks.check_steps_and_guidance(num_inference_steps, guidance_scale)
        generator = self.make_generator(seed, noise_device)  # a bad noise_device fails before any model runs
        cache = check_cache(cache)
        text = self.encode_text(prompt, negative_prompt, with_negative=guidance_scale > 1.0)
        global_cond = self.encode_global(image, kps_cond, height, width)
        local = self.encode_local(id_cond, id_vit_hidden, face_scale)
        video = self._sample(text, global_cond, local, num_frames, num_inference_steps, guidance_scale,
                             use_dynamic_cfg, seed, callback, generator, cache)  # settings checked (and warned about) above
        return self.decode(video, vae_tiling, vae_slicing)

    # ---- LoRA (stable API) --------------------------------------------------------------------------
    def load_lora(self, path, strength: float = 1.0, name: str | None = None) -> str:
        """Stack a diffusers-format LoRA file on the transformer (no reload); returns its name."""
        from .lora import load_lora

        return load_lora(self, path, strength, name)

    def unload_lora(self, name: str | None = None) -> None:
        """Remove the LoRA `name`, or every LoRA (the original weights are untouched, so this is exact)."""
        from .lora import unload_lora

        unload_lora(self, name)

    def release(self) -> None:
        """Move every model off the accelerator (e.g. when ComfyUI frees memory)."""
        self.placement.release(self.text_encoder, self.transformer, self.vae)
