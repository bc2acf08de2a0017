"""The protocol's rules, each on its own: frame sampling, skipped no-face frames, clip at 0, padding retry,
per-frame and set FID, short videos, motion, bad inputs, missing files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from consisid_core.errors import UnsupportedInputError
from consisid_core.face.errors import NoFaceError
from consisid_core.metrics import EvalFilesError, locate_eval_files, score_video
from consisid_core.metrics import fid as fid_mod
from consisid_core.metrics.faces import find_scoring_face, norm_crop
from consisid_core.metrics.motion import flow_magnitudes
from consisid_core.metrics.protocol import clip_frame_indices, face_frame_indices
from consisid_core.metrics.video_io import read_video

from metrics_fixtures import pan


def test_frame_sampling_follows_the_scripts():
    assert face_frame_indices(49, "consisid").tolist() == np.linspace(0, 48, 16, dtype=int).tolist()
    assert face_frame_indices(49, "consisid").tolist()[:4] == [0, 3, 6, 9]
    assert clip_frame_indices(49, "consisid").tolist() == [int(i * 49 / 16) for i in range(16)]
    short = face_frame_indices(5, "consisid")
    assert len(short) == 16 and short.tolist().count(0) == 4  # repeats, as cap.set() reads them again
    assert face_frame_indices(5, "fixed").tolist() == [0, 1, 2, 3, 4]
    assert clip_frame_indices(5, "fixed").tolist() == [0, 1, 2, 3, 4]


def test_frames_without_a_face_are_skipped(fast_models, photos):
    video = pan(photos["astronaut"], 16)
    video[1::3] = pan(photos["coffee"], 16)[1::3]  # every third frame: no face
    s = score_video(fast_models, video, photos["astronaut"], protocol="consisid")
    no_face = np.isnan(s.per_frame["facesim_arc"])
    assert no_face.tolist() == [i % 3 == 1 for i in range(16)]
    assert s.face_frames == [i for i in range(16) if i % 3 != 1]
    assert s.facesim_arc == pytest.approx(np.nanmean(s.per_frame["facesim_arc"]))
    assert s.fid == pytest.approx(np.nanmean(s.per_frame["fid"]))


def test_a_video_with_no_face_scores_zero(fast_models, photos):
    video = pan(photos["coffee"], 4)
    consisid = score_video(fast_models, video, photos["astronaut"], protocol="consisid")
    assert (consisid.facesim_arc, consisid.facesim_cur, consisid.fid, consisid.face_frames) == (0.0, 0.0, 0.0, [])
    fixed = score_video(fast_models, video, photos["astronaut"])
    assert fixed.fid is None and fixed.facesim_arc == 0.0  # no FID from an empty set


def test_reference_photo_without_a_face_is_a_clear_error(fast_models, photos):
    with pytest.raises(NoFaceError, match="reference photo"):
        score_video(fast_models, pan(photos["astronaut"], 4), photos["chelsea"])


class _Negated:
    """Recogniser double: the true embedding for the reference, its negative for every video frame."""

    def __init__(self, inner, reference_shape):
        self.inner, self.reference_shape = inner, reference_shape

    def embed(self, image_bgr, kps):
        e = self.inner.embed(image_bgr, kps)
        return e if image_bgr.shape[:2] == self.reference_shape else -e


def test_similarities_are_clipped_at_zero(fast_models, photos):
    models = dataclasses.replace(fast_models, recognizer=_Negated(fast_models.recognizer, photos["astronaut"].shape[:2]))
    s = score_video(models, pan(photos["astronaut"], 6), photos["astronaut"])
    arc = s.per_frame["facesim_arc"]
    assert len(s.face_frames) == 6 and (arc == 0.0).all() and s.facesim_arc == 0.0


class _FoundOnlyWhenPadded:
    """Detector double: finds the face of the unpadded photo only in an image with a grey border."""

    def __init__(self, inner, plain_shape):
        self.inner, self.plain_shape, self.sizes = inner, plain_shape, []

    def detect(self, image_bgr):
        self.sizes.append(image_bgr.shape[:2])
        return [] if image_bgr.shape[:2] == self.plain_shape else self.inner.detect(image_bgr)


class _Recorder:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def embed(self, image_bgr, kps):
        self.calls.append((image_bgr.shape[:2], np.array(kps)))
        return self.inner.embed(image_bgr, kps)


def test_padding_retry_shifts_points_back(fast_models, photos):
    rgb = photos["astronaut"]
    detector = _FoundOnlyWhenPadded(fast_models.detector, rgb.shape[:2])
    recorder = _Recorder(fast_models.recognizer)
    face = find_scoring_face(detector, recorder, rgb)
    assert detector.sizes == [(512, 512), (512 + 2 * 128, 512 + 2 * 128)]  # int(512 * 0.25) per side
    padded_kps = fast_models.detector.detect(np.pad(rgb[:, :, ::-1], ((128, 128), (128, 128), (0, 0)),
                                                    constant_values=128))[0].kps
    np.testing.assert_allclose(face.kps, padded_kps - 128)
    assert recorder.calls[0][0] == (768, 768)  # the embedding comes from the padded image, as FaceAnalysis.get
    np.testing.assert_array_equal(face.crop_rgb, norm_crop(rgb[:, :, ::-1].copy(), face.kps)[:, :, ::-1])
    assert face.padded


def test_largest_face_is_scored(fast_models, photos):
    group = photos["t1"]
    faces = fast_models.detector.detect(np.ascontiguousarray(group[:, :, ::-1]))
    assert len(faces) >= 3
    biggest = max(faces, key=lambda f: f.area)
    face = find_scoring_face(fast_models.detector, fast_models.recognizer, group)
    np.testing.assert_allclose(face.kps, biggest.kps)


def _script_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """The script's calculate_fid on one activation per side, each repeated to two rows (torch, float32)."""
    a = torch.tensor(np.repeat(real[None], 2, axis=0))
    b = torch.tensor(np.repeat(fake[None], 2, axis=0))
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(s1.mm(s2))
    covmean = (v * torch.sqrt(torch.clamp(w, min=0))).mm(v.T)
    return float(torch.sum((a.mean(0) - b.mean(0)) ** 2) + torch.trace(s1 + s2 - 2 * covmean))


def test_per_frame_fid_is_the_squared_distance(fast_models, photos):
    s = score_video(fast_models, pan(photos["astronaut"], 4), photos["astronaut"], protocol="consisid")
    feats, ref = s.inception_features, s.reference_feature
    for k, value in enumerate(s.per_frame["fid"][:1]):
        assert value == pytest.approx(_script_fid(ref, feats[k]), rel=1e-5)
        assert value == pytest.approx(float(((ref - feats[k]) ** 2).sum()), rel=1e-5)


def test_fixed_fid_equals_scipy():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (60, 24)) @ rng.normal(0, 1, (24, 24))
    b = rng.normal(0.3, 1.2, (45, 24))
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert fid_mod.set_fid(a, b) == pytest.approx(expected, rel=1e-8)
    assert fid_mod.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert fid_mod.set_fid(a, a) == pytest.approx(0.0, abs=1e-6)
    one = a[:1]  # a single reference face: zero covariance, FID = |mu - x|^2 + Tr(S)
    assert fid_mod.set_fid(one, b) == pytest.approx(((one[0] - mu2) ** 2).sum() + np.trace(s2), rel=1e-8)


def test_fixed_fid_of_a_video(fast_models, photos):
    s = score_video(fast_models, pan(photos["astronaut"], 6), photos["astronaut"])
    x = s.inception_features.astype(np.float64)
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    ref = s.reference_feature.astype(np.float64)
    expected = ((ref - mu) ** 2).sum() + np.trace(sigma)  # one reference face: its covariance is 0
    assert s.fid == pytest.approx(expected, rel=1e-6)


def test_videos_shorter_than_16_frames(fast_models, photos):
    video = pan(photos["astronaut"], 5)
    consisid = score_video(fast_models, video, photos["astronaut"], protocol="consisid")
    fixed = score_video(fast_models, video, photos["astronaut"])
    assert len(consisid.per_frame["frame_index"]) == 16 and len(fixed.per_frame["frame_index"]) == 5
    assert len(consisid.face_frames) == 16 and sorted(set(consisid.face_frames)) == fixed.face_frames
    # repeats only re-weight the frames: the mean over the 16 picks, frame by frame
    per = dict(zip(fixed.face_frames, fixed.per_frame["facesim_cur"]))
    assert consisid.facesim_cur == pytest.approx(np.mean([per[i] for i in consisid.face_frames]), rel=1e-6)


def test_motion_measures_the_pan(fast_models, photos):
    still = np.repeat(pan(photos["astronaut"], 1), 4, axis=0)
    moving = pan(photos["astronaut"], 4, step=4)  # 4 px of a 320 window -> 3.2 px at 256
    s_still = score_video(fast_models, still, photos["astronaut"])
    s_moving = score_video(fast_models, moving, photos["astronaut"])
    assert s_still.motion == pytest.approx(0.0, abs=0.01)
    assert s_moving.motion == pytest.approx(3.2, rel=0.25)
    assert len(s_moving.per_frame["motion"]) == 3
    faster = flow_magnitudes(list(pan(photos["astronaut"], 3, step=8)))
    assert faster.mean() > 1.3 * s_moving.motion
    vertical = flow_magnitudes(list(np.ascontiguousarray(moving.transpose(0, 2, 1, 3))))  # the same pan, downwards
    assert vertical.mean() == pytest.approx(s_moving.motion, rel=0.15)


@pytest.mark.parametrize("frames, message", [
    (np.zeros((8, 64, 64), np.uint8), "grayscale"),
    (np.zeros((8, 64, 64, 1), np.uint8), "grayscale"),
    (np.zeros((1, 64, 64, 3), np.uint8), "at least 2"),
    (np.zeros((64, 64, 3), np.uint8), "one image"),
    ([], "no frames"),
    ("not a video", "list of HxWx3"),
])
def test_bad_videos_are_clear_errors(fast_models, photos, frames, message):
    with pytest.raises(UnsupportedInputError, match=message):
        score_video(fast_models, frames, photos["astronaut"])


def test_unknown_protocol(fast_models, photos):
    with pytest.raises(UnsupportedInputError, match="fixed"):
        score_video(fast_models, pan(photos["astronaut"], 2), photos["astronaut"], protocol="paper")


def test_a_non_video_file_is_a_clear_error(tmp_path):
    (tmp_path / "notes.mp4").write_text("hello")
    with pytest.raises(UnsupportedInputError, match="could not be read as a video"):
        read_video(tmp_path / "notes.mp4")
    with pytest.raises(UnsupportedInputError, match="does not exist"):
        read_video(tmp_path / "absent.mp4")


def test_missing_files_are_named_with_sources(tmp_path):
    face_dir = tmp_path / "consisid" / "ConsisID-preview" / "face_encoder"
    face_dir.mkdir(parents=True)
    with pytest.raises(EvalFilesError) as info:
        locate_eval_files(face_dir.parent)
    text = str(info.value)
    for name, source in [("det_10g.onnx", "buffalo_l.zip"), ("w600k_r50.onnx", "buffalo_l.zip"),
                         ("glint360k_curricular_face_r101_backbone.bin", "ConsisID-preview"),
                         ("inception_v3_google-0cc3c7bd.pth", "download.pytorch.org"),
                         ("model.safetensors", "openai/clip-vit-base-patch32")]:
        line = next(line for line in text.splitlines() if name in line)
        assert source in line, line
    assert len(info.value.missing) == 9 and "searched:" in text and str(tmp_path / "consisid" / "eval") in text
