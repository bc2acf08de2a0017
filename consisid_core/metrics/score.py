"""Score one video against a reference photo: FaceSim-Arc, FaceSim-Cur, CLIPScore, face FID and motion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from ..face.errors import NoFaceError
from ..image_input import load_rgb
from . import fid as fid_mod
from .faces import ScoringFace, find_scoring_face
from .models import EvalModels
from .motion import flow_magnitudes
from .protocol import check_protocol, clip_frame_indices, face_frame_indices, video_frames


@dataclass
class ReferenceFace:
    """The reference photo's face, encoded once and reused for many videos."""

    face: ScoringFace
    cur_embedding: np.ndarray
    inception: np.ndarray  # (2048,)


@dataclass
class VideoScores:
    """Means over the scored frames, plus every per-frame value (NaN where a frame had no face)."""

    protocol: str
    facesim_arc: float
    facesim_cur: float
    clipscore: float | None
    fid: float | None
    motion: float
    per_frame: dict[str, np.ndarray]
    face_frames: list[int]
    frame_count: int = 0
    inception_features: np.ndarray = field(default_factory=lambda: np.zeros((0, 2048), np.float32), repr=False)
    reference_feature: np.ndarray | None = field(default=None, repr=False)

    def as_row(self) -> dict[str, Any]:
        """The CSV/JSON columns (names as in ConsisID's eval_all_in_once.py, plus ours)."""
        return {"cur_score": self.facesim_cur, "arc_score": self.facesim_arc, "fid_score": self.fid,
                "clip_score": self.clipscore, "motion": self.motion, "face_frames": len(self.face_frames),
                "scored_frames": int(len(self.per_frame["frame_index"])), "protocol": self.protocol}


@torch.no_grad()
def curricular_embeddings(model: torch.nn.Module, crops_rgb: list[np.ndarray]) -> np.ndarray:
    """IR-101 embeddings, L2-normalised: crop resized to 112 (cv2), (x/255 - 0.5)/0.5."""
    if not crops_rgb:
        return np.zeros((0, 512), np.float32)
    device = next(model.parameters()).device
    x = torch.from_numpy(np.stack([cv2.resize(c, (112, 112)) for c in crops_rgb])).permute(0, 3, 1, 2).float()
    x = x.div_(255).sub_(0.5).div_(0.5).to(device)
    emb = model(x).float().cpu().numpy()
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def cosine_clipped(a: np.ndarray, b: np.ndarray) -> float:
    """max(0, cos(a, b))."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    return max(0.0, cos)


def encode_reference(models: EvalModels, photo: Any) -> ReferenceFace:
    """Find and encode the reference photo's face (path, PIL, array or IMAGE tensor)."""
    rgb = load_rgb(photo)
    face = find_scoring_face(models.detector, models.recognizer, rgb)
    if face is None:
        raise NoFaceError("No face was found in the reference photo (buffalo_l, also after padding it); "
                          "use a photo where one face is clearly visible.")
    cur = curricular_embeddings(models.curricular, [face.crop_rgb])[0]
    inc = fid_mod.inception_features(models.inception, [face.crop_rgb])[0]
    return ReferenceFace(face, cur, inc)


def score_video(models: EvalModels, frames: Any, reference_photo: Any, prompt: str | None = None,
                protocol: str = "fixed") -> VideoScores:
    """Score a video ([F,H,W,3] or list of RGB frames) against a reference photo (or a ReferenceFace).

    protocol="consisid" reproduces ConsisID's eval scripts, quirks included (BGR frames to CLIP, per-frame
    ‖a−b‖² "FID", repeated frames for short videos); "fixed" feeds CLIP RGB and reports a real Fréchet distance.
    """
    protocol = check_protocol(protocol)
    rgb_frames = video_frames(frames)
    ref = reference_photo if isinstance(reference_photo, ReferenceFace) else encode_reference(models, reference_photo)
    total = len(rgb_frames)
    indices = face_frame_indices(total, protocol)

    unique = list(dict.fromkeys(int(i) for i in indices))  # a repeated frame (short video) is computed once
    faces = {i: find_scoring_face(models.detector, models.recognizer, rgb_frames[i]) for i in unique}
    with_face = [i for i in unique if faces[i] is not None]
    crops = [faces[i].crop_rgb for i in with_face]
    cur = dict(zip(with_face, curricular_embeddings(models.curricular, crops)))
    unique_feats = fid_mod.inception_features(models.inception, crops)
    feat_of = dict(zip(with_face, unique_feats))

    n = len(indices)
    arc_pf, cur_pf, fid_pf = (np.full(n, np.nan) for _ in range(3))
    found = [(k, int(i)) for k, i in enumerate(indices) if faces[int(i)] is not None]
    for k, i in found:
        arc_pf[k] = cosine_clipped(ref.face.arc_embedding, faces[i].arc_embedding)
        cur_pf[k] = cosine_clipped(ref.cur_embedding, cur[i])
        fid_pf[k] = fid_mod.pairwise_fid(ref.inception, feat_of[i])
    feats = np.stack([feat_of[i] for _, i in found]) if found else unique_feats
    has_face = ~np.isnan(arc_pf)

    def mean(values: np.ndarray) -> float:  # the script: a video without any face scores 0
        return float(np.mean(values[has_face])) if has_face.any() else 0.0

    if protocol == "consisid":
        fid_value: float | None = mean(fid_pf)
    else:
        fid_value = fid_mod.set_fid(ref.inception[None], feats)

    per_frame = {"frame_index": indices.astype(int), "facesim_arc": arc_pf, "facesim_cur": cur_pf, "fid": fid_pf,
                 "motion": flow_magnitudes(rgb_frames)}
    clipscore = None
    if prompt is not None and str(prompt).strip():
        clip_idx = clip_frame_indices(total, protocol)
        clip_frames = [rgb_frames[i] for i in clip_idx]
        if protocol == "consisid":  # the script hands OpenCV's BGR frames to the processor
            clip_frames = [np.ascontiguousarray(f[:, :, ::-1]) for f in clip_frames]
        per_clip = models.clip.scores(clip_frames, str(prompt))
        per_frame["clip_frame_index"], per_frame["clipscore"] = clip_idx.astype(int), per_clip
        clipscore = float(np.mean(per_clip))
    motion = per_frame["motion"]
    return VideoScores(
        protocol=protocol, facesim_arc=mean(arc_pf), facesim_cur=mean(cur_pf), clipscore=clipscore, fid=fid_value,
        motion=float(motion.mean()) if len(motion) else 0.0, per_frame=per_frame,
        face_frames=[i for _, i in found], frame_count=total,
        inception_features=feats, reference_feature=ref.inception,
    )
