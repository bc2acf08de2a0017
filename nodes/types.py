"""The pack's socket types (names and their V3 io types) and the values that travel on them (never ComfyUI's own
type names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from comfy_api.v0_0_2 import io

CATEGORY = "ConsisID"

MODEL = "CONSISID_MODEL"  # EngineHandle
FACE_MODELS = "CONSISID_FACE_MODELS"  # FaceModelsHandle
FACE = "CONSISID_FACE"  # FaceDetections
GLOBAL = "CONSISID_GLOBAL"  # GlobalFeatures
LOCAL = "CONSISID_LOCAL"  # LocalFeatures
TEXT = "CONSISID_TEXT"  # TextFeatures
LATENTS = "CONSISID_LATENTS"  # Latents
CACHE = "CONSISID_CACHE"  # consisid_core TeaCache
EVAL_MODELS = "CONSISID_EVAL_MODELS"  # consisid_core.metrics EvalModels
PARALLEL = "CONSISID_PARALLEL"  # nodes.parallel_node.ParallelWorkers
TAKES = "CONSISID_TAKES"  # nodes.takes_nodes.Takes
SIZE = "CONSISID_SIZE"  # the Sampler's never-wired `size` input: a wrong width/height/num_frames (nodes/prompt_checks.py)
PACK_TYPES = (MODEL, FACE_MODELS, FACE, GLOBAL, LOCAL, TEXT, LATENTS, CACHE, EVAL_MODELS, PARALLEL, TAKES, SIZE)


class Sockets:
    """The V3 io type of each name above (made once): `Sockets.Model.Input("model", ...)`, `.Output(...)`."""

    Model = io.Custom(MODEL)
    FaceModels = io.Custom(FACE_MODELS)
    Face = io.Custom(FACE)
    Global = io.Custom(GLOBAL)
    Local = io.Custom(LOCAL)
    Text = io.Custom(TEXT)
    Latents = io.Custom(LATENTS)
    Cache = io.Custom(CACHE)
    EvalModels = io.Custom(EVAL_MODELS)
    Parallel = io.Custom(PARALLEL)
    Takes = io.Custom(TAKES)
    Size = io.Custom(SIZE)


@dataclass(frozen=True)
class FaceInfo:
    """Where the chosen face is: 5 points and box in the photo, 5 points in the 512x512 aligned face."""

    kps: np.ndarray
    bbox: np.ndarray
    face_kps: np.ndarray
    source_size: tuple[int, int]  # (width, height) of the photo
    aligned_size: tuple[int, int]  # (width, height) of the aligned face
    face_count: int
    det_score: float
    selection: str
    reading: Any = None  # consisid_core.face.FaceReading: ArcFace embedding + parsed face, for the Local Extractor


@dataclass(frozen=True)
class FaceDetections:
    """CONSISID_FACE: one FaceInfo per image of the batch given to Face Crop&Align; the photo was read there once
    and everything later nodes need from it (points, ArcFace embedding, parsed face for EVA-CLIP) travels here."""

    faces: tuple[FaceInfo, ...]


@dataclass
class GlobalFeatures:
    """CONSISID_GLOBAL: the encoded face (at the model's native size) and what is needed to re-encode it."""

    conditioning: Any  # consisid_core GlobalConditioning
    face_image: np.ndarray  # HxWx3 uint8, the aligned face as given
    landmark_image: np.ndarray | None  # HxWx3 uint8, only kept when the checkpoint uses keypoints
    encoded_by: Any  # the EngineSettings of the model that encoded it


@dataclass
class LocalFeatures:
    """CONSISID_LOCAL: ArcFace + EVA-CLIP identity features (face tokens are made by the sampler)."""

    id_cond: Any  # torch [1, 512 + E]
    id_vit_hidden: list = field(default_factory=list)  # 5 x torch [1, tokens, width]
    face_scale: float = 1.0
    photos: int = 1


@dataclass
class TextFeatures:
    """CONSISID_TEXT: prompt (and negative prompt) embeddings padded to the model's text length."""

    conditioning: Any  # consisid_core TextConditioning (negative always present)
    source: str  # "model T5" or "CLIP input"


@dataclass
class Latents:
    """CONSISID_LATENTS: the denoised video latents and the model that made them."""

    video: Any  # consisid_core LatentVideo
    made_by: Any  # EngineSettings
