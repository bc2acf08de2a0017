"""Global Extractor (the face as low-frequency VAE conditioning) and ConsisID Text Encode."""

from __future__ import annotations

import logging

import numpy as np
from comfy_api.v0_0_2 import io
from consisid_core import node_ids

from .errors import fail, label, reported_as
from .types import CATEGORY, GlobalFeatures, Sockets, TextFeatures

_log = logging.getLogger("ConsisID")

DEFAULT_PROMPT = (
    "The video captures a person smiling warmly at the camera in a sunlit park; soft wind moves their hair, "
    "the camera slowly pushes in, natural light, high detail."
)


def first_image_uint8(image) -> np.ndarray:
    """The first image of a ComfyUI IMAGE batch as HxWx3 uint8, by consisid_core's one image normaliser (an alpha
    channel is composited on white, exactly as for a photo read from disk)."""
    from consisid_core.image_input import load_rgb

    return load_rgb(image[0])


class ConsisIDGlobalExtractor(io.ComfyNode):
    DISPLAY_NAME = "Global Extractor"
    LABEL = label(DISPLAY_NAME, node_ids.GLOBAL_EXTRACTOR)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.GLOBAL_EXTRACTOR,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Low-frequency identity: encodes the aligned face (from Face Crop&Align) with the model's VAE at the "
                "checkpoint's native size; the sampler places it at the first latent frame. If the sampler uses "
                "another size it re-encodes the same face at that size."
            ),
            inputs=[
                Sockets.Model.Input("model", tooltip="From ConsisID DiT Loader (its VAE encodes the face)."),
                io.Image.Input("aligned_face", tooltip=(
                    "The aligned face from Face Crop&Align (512x512 colour on white); only the first image of a "
                    "batch is used. It is stretched to the video size, as in the original code.")),
                io.Image.Input("landmarks", optional=True, tooltip=(
                    "Optional keypoint image from Landmark Renderer. Used only when the checkpoint was trained with "
                    "keypoints (is_kps: true in transformer/config.json); ConsisID-preview ignores it.")),
            ],
            outputs=[Sockets.Global.Output("global", tooltip="The encoded face, for ConsisID Sampler's global_cond input.")],
        )

    @classmethod
    def execute(cls, model, aligned_face, landmarks=None) -> io.NodeOutput:
        with reported_as(cls.LABEL):
            engine = model.get()
            info = engine.info
            face = first_image_uint8(aligned_face)
            landmark_image = None
            if landmarks is not None and info.is_kps:
                landmark_image = first_image_uint8(landmarks)
            elif landmarks is not None:
                _log.debug("ConsisID: this checkpoint has is_kps=false, the landmarks input is ignored")
            elif info.is_kps:
                _log.warning("ConsisID: this checkpoint was trained with keypoints (is_kps) but no landmarks image "
                             "is connected to the Global Extractor; the face alone is used")
            conditioning = engine.encode_global(
                face, kps_cond=landmark_image, height=info.native_height, width=info.native_width
            )
        return io.NodeOutput(GlobalFeatures(conditioning, face, landmark_image, model.settings))


class ConsisIDTextEncode(io.ComfyNode):
    DISPLAY_NAME = "ConsisID Text Encode"
    LABEL = label(DISPLAY_NAME, node_ids.TEXT_ENCODE)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.TEXT_ENCODE,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "T5 prompt embeddings for ConsisID (padded to the model's 226 tokens exactly as the original code; a "
                "longer prompt is cut with a warning). Uses the model folder's own T5 unless a core CLIP (T5-XXL "
                "loaded by CLIPLoader, type sd3) is connected."
            ),
            inputs=[
                Sockets.Model.Input("model", tooltip=(
                    "From ConsisID DiT Loader (its T5 encodes the text; its text length applies).")),
                io.String.Input("prompt", default=DEFAULT_PROMPT, multiline=True, tooltip=(
                    "What happens in the video. ConsisID was trained on long descriptive captions: describe the "
                    "person, action, setting, camera and light in one or two sentences.")),
                io.String.Input("negative_prompt", default="", multiline=True, tooltip=(
                    "What to avoid (used when the sampler's cfg is above 1); empty as in the original code.")),
                io.Clip.Input("clip", optional=True, tooltip=(
                    "Optional: ComfyUI's T5-XXL (CLIPLoader, type sd3, e.g. t5xxl_fp16.safetensors) used instead "
                    "of the model's own T5, e.g. to share one T5 with other workflows or use an fp8 T5. Its tokens "
                    "are padded/cut to the model's text length here; the embedding width must be 4096.")),
            ],
            outputs=[Sockets.Text.Output("text", tooltip="Prompt and negative prompt embeddings, for ConsisID Sampler.")],
        )

    @classmethod
    def execute(cls, model, prompt, negative_prompt, clip=None) -> io.NodeOutput:
        with reported_as(cls.LABEL):
            engine = model.get()
            if clip is None:
                # the negative is always encoded: cfg is chosen on the sampler
                conditioning = engine.encode_text(prompt, negative_prompt, with_negative=True)
                source = "model T5"
            else:
                conditioning = cls._with_clip(engine, clip, prompt, negative_prompt)
                source = "CLIP input"
        return io.NodeOutput(TextFeatures(conditioning, source))

    @classmethod
    def _with_clip(cls, engine, clip, prompt, negative_prompt):
        from .clip_text import ClipTextError, clip_embeddings

        width = engine.info.text_embed_dim
        try:
            positive = clip_embeddings(clip, prompt, engine.info.text_len, width)
            negative = clip_embeddings(clip, negative_prompt, engine.info.text_len, width)
        except ClipTextError as exc:
            raise fail(cls.LABEL, str(exc)) from exc
        conditioning = engine.text_from_embeddings(positive, negative)
        conditioning.prompt, conditioning.negative_prompt = prompt, negative_prompt
        return conditioning
