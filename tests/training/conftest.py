"""Training fixtures: synthetic clips (slow pan/zoom over skimage's astronaut), a Haar face double, tiny models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from consisid_core.face.detection import DetectedFace

CAPTION = "a man in a portrait looks at the camera in bright light"


class HaarFaceDetector:
    """Test double for the face detectors: OpenCV's Haar cascade (random networks cannot find a face)."""

    LAYOUT = np.array([[0.29, 0.38], [0.74, 0.40], [0.50, 0.69], [0.26, 0.77], [0.72, 0.80]], dtype=np.float32)

    def __init__(self, name: str) -> None:
        self.name = name
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        faces = []
        for x, y, w, h in (boxes if len(boxes) else []):
            bbox = np.array([x, y, x + w, y + h], dtype=np.float32)
            kps = (np.array([x, y], dtype=np.float32) + self.LAYOUT * np.float32(w)).astype(np.float32)
            faces.append(DetectedFace(bbox=bbox, kps=kps, score=1.0, source=self.name))
        return sorted(faces, key=lambda f: -f.area)


def pan_zoom_frames(image: np.ndarray, count: int, size=(192, 288), zoom=(1.0, 0.85), shift=40) -> np.ndarray:
    """A slow pan and zoom over a photo: [count, H, W, 3] uint8."""
    height, width = size
    src_h, src_w = image.shape[:2]
    frames = []
    for t in np.linspace(0.0, 1.0, count):
        scale = zoom[0] + (zoom[1] - zoom[0]) * t
        crop_w = src_w * scale
        crop_h = crop_w * height / width
        cx = src_w / 2 + (t - 0.5) * shift
        cy = src_h * 0.4
        x0 = float(np.clip(cx - crop_w / 2, 0, src_w - crop_w))
        y0 = float(np.clip(cy - crop_h / 2, 0, src_h - crop_h))
        matrix = np.array([[width / crop_w, 0, -x0 * width / crop_w], [0, height / crop_h, -y0 * height / crop_h]])
        frames.append(cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def write_clip(path: Path, frames: np.ndarray, caption: str | None = CAPTION) -> Path:
    from consisid_core.video import write_mp4

    write_mp4(frames, path, fps=8, crf=12)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption)
    return path


@pytest.fixture(scope="session")
def pan_zoom():
    return pan_zoom_frames


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return pytest.importorskip("skimage.data").astronaut()


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory, astronaut) -> Path:
    """One good clip and the bad ones: no face, too short, corrupt, a still image (mp4 and a .png)."""
    skdata = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("clips")
    write_clip(root / "astronaut.mp4", pan_zoom_frames(astronaut, 40))
    write_clip(root / "coffee.mp4", pan_zoom_frames(skdata.coffee(), 40))
    write_clip(root / "short.mp4", pan_zoom_frames(astronaut, 6))
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (root / "corrupt.txt").write_text(CAPTION)
    write_clip(root / "still.mp4", np.repeat(pan_zoom_frames(astronaut, 1), 40, axis=0))
    cv2.imwrite(str(root / "photo.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    frames_dir = root / "frames_clip"  # a clip given as a folder of frames, its caption inside
    frames_dir.mkdir()
    for i, frame in enumerate(pan_zoom_frames(astronaut, 30, zoom=(0.95, 0.8))):
        cv2.imwrite(str(frames_dir / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (frames_dir / "caption.txt").write_text(CAPTION)
    return root


@pytest.fixture(scope="session")
def good_clip_dir(tmp_path_factory, astronaut) -> Path:
    root = tmp_path_factory.mktemp("good_clips")
    write_clip(root / "astronaut.mp4", pan_zoom_frames(astronaut, 40))
    return root


@pytest.fixture(scope="session")
def comfy_base(tmp_path_factory) -> Path:
    """A ComfyUI-like folder holding the tiny model: models/consisid/ConsisID-preview (+ the face photo in input/).

    The tiny DiT is the official layout with the default TinySpec (32x48, 9 frames); its face_encoder/ finds the
    bundled photo's face (for the canvas run), and the training tests swap its detectors for the Haar double."""
    import shutil

    from support.node_graph import DEFAULT_PHOTO, FACE_FILE, MODEL_NAME, install_tiny_model

    base = tmp_path_factory.mktemp("ComfyUI_train")
    install_tiny_model(base / "models" / "consisid" / MODEL_NAME)
    (base / "input").mkdir()
    shutil.copy(DEFAULT_PHOTO, base / "input" / FACE_FILE)
    return base


@pytest.fixture(scope="session")
def train_model(comfy_base) -> Path:
    from support.node_graph import MODEL_NAME

    return comfy_base / "models" / "consisid" / MODEL_NAME


@pytest.fixture(scope="session")
def haar_face_models(train_model):
    from consisid_core.face import load_face_models

    models = load_face_models(train_model / "face_encoder")
    return dataclasses.replace(models, detector=HaarFaceDetector("antelopev2"), landmarker=HaarFaceDetector("retinaface"))


@pytest.fixture(scope="session")
def components(train_model, haar_face_models):
    from consisid_core.training.components import load_text, load_vae, model_files, model_info
    from consisid_core.training.prepare import Components

    files = model_files(train_model)
    tokenizer, text_encoder = load_text(files)
    return Components(vae=load_vae(files), tokenizer=tokenizer, text_encoder=text_encoder, faces=haar_face_models,
                      info=model_info(files))


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, components, good_clip_dir) -> Path:
    """A prepared dataset of the one good clip (mask from the box: the random BiSeNet parses nothing useful)."""
    from consisid_core.training.prepare import PrepareOptions, prepare_dataset

    out = tmp_path_factory.mktemp("dataset")
    report = prepare_dataset(components, good_clip_dir, out, options=PrepareOptions(mask="box"), log=lambda s: None)
    assert report.ok == ["astronaut"], report.skipped
    return out


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory, train_model, prepared):
    """30 seeded LoRA steps on the one clip: (trainer, eval loss before, eval loss after, result)."""
    from consisid_core.training.recipe import TrainConfig
    from consisid_core.training.trainer import Trainer

    config = TrainConfig(mode="lora", lora_rank=4, lora_alpha=8, learning_rate=2.5e-2, warmup_steps=0, coarse_steps=0,
                         text_dropout=0.0, checkpoint_every=1000, max_steps=30)
    trainer = Trainer(train_model, prepared, tmp_path_factory.mktemp("lora_run"), config)
    before = trainer.evaluate(16)
    result = trainer.run(log=lambda s: None)
    return trainer, before, trainer.evaluate(16), result
