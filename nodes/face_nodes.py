"""Face Crop&Align, Landmark Renderer and Local Extractor: photos in, aligned faces and identity features out."""

from __future__ import annotations

import logging

import numpy as np
from comfy_api.v0_0_2 import io
from consisid_core import choices, node_ids

from .errors import fail, label, reported_as
from .types import CATEGORY, FaceDetections, FaceInfo, LocalFeatures, Sockets

_log = logging.getLogger("ConsisID")

SELECTIONS = [*choices.FACE_SELECTIONS, choices.FACE_INDEX]
SELECTION_TOOLTIP = (
    "Which face to use when a photo shows several: largest (default), central (closest to the image "
    "centre), index (face_index, counted left to right from 0), or reference (exactly the original code: "
    "ArcFace of the largest face, crop of the most central one)."
)
INDEX_TOOLTIP = "Used when face_selection is 'index': 0 is the left-most face, 1 the next one, and so on."


def selection_inputs(note: str = "") -> list[io.Input]:
    """The face_selection / face_index widget pair (Face Crop&Align's, and the Local Extractor's legacy one)."""
    return [
        io.Combo.Input("face_selection", options=SELECTIONS, default="largest", tooltip=SELECTION_TOOLTIP + note),
        io.Int.Input("face_index", default=0, min=0, max=64, step=1, tooltip=INDEX_TOOLTIP + note),
    ]


def selection_value(face_selection: str, face_index: int):
    """The consisid_core face_selection argument for the widget pair."""
    return int(face_index) if face_selection == choices.FACE_INDEX else face_selection


REWIRE = ("connect Face Crop&Align's face output to the Local Extractor's face input (and leave its image input "
          "empty) so the photo is read once")
LEGACY_NOTE = f"The Local Extractor read this photo itself through its legacy image input; {REWIRE}."


def read_faces(node: str, face_models, image, selection, note: str = "") -> list:
    """One FaceReading per image of a ComfyUI IMAGE batch (the photo's one read: detect, align, ArcFace, parse);
    a no-face error names the image of the batch."""
    from consisid_core.face import NoFaceError, read_face

    from . import comfy_bridge

    models = face_models.get()
    found = []
    for index in range(image.shape[0]):
        try:
            found.append(read_face(models, image[index], selection, should_cancel=comfy_bridge.throw_if_interrupted))
        except NoFaceError as exc:
            where = f"image {index + 1} of {image.shape[0]}: " if image.shape[0] > 1 else ""
            raise fail(node, f"{where}{exc}{' ' + note if note else ''}") from exc
    return found


def to_image_batch(arrays: list[np.ndarray]):
    """HxWx3 uint8 arrays of one size -> a ComfyUI IMAGE [B, H, W, 3] float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0)


class ConsisIDFaceCropAlign(io.ComfyNode):
    DISPLAY_NAME = "Face Crop&Align"
    LABEL = label(DISPLAY_NAME, node_ids.FACE_CROP_ALIGN)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.FACE_CROP_ALIGN,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Detects one face per photo and aligns it to the 512x512 FFHQ template on a white background (face "
                "parsing removes hair/background), the image ConsisID's Global Extractor encodes. Also outputs where "
                "the face is (5 keypoints, box) for the Landmark Renderer and, on the same face output, the ArcFace "
                "embedding and parsed face the Local Extractor needs: the photo is read once, here. A photo without a "
                "usable face stops the run with a message saying what to change."
            ),
            inputs=[
                Sockets.FaceModels.Input("face_models", tooltip="From ConsisID Face Models Loader."),
                io.Image.Input("image", tooltip=(
                    "Photo(s) of the person: a clear, frontal, well-lit face at least about 100 px wide. "
                    "Each image of a batch is aligned separately.")),
                *selection_inputs(),
            ],
            outputs=[
                io.Image.Output("aligned_face", tooltip="The aligned face, 512x512, colour on white (one per input image)."),
                Sockets.Face.Output("face", tooltip=(
                    "Each chosen face: keypoints and box (for the Landmark Renderer), ArcFace embedding and parsed face "
                    "(for the Local Extractor).")),
            ],
        )

    @classmethod
    def execute(cls, face_models, image, face_selection, face_index) -> io.NodeOutput:
        with reported_as(cls.LABEL):
            found = read_faces(cls.LABEL, face_models, image, selection_value(face_selection, face_index))
        faces = tuple(
            FaceInfo(
                kps=np.asarray(i.kps, dtype=np.float32), bbox=np.asarray(i.bbox, dtype=np.float32),
                face_kps=np.asarray(i.face_kps, dtype=np.float32), source_size=tuple(i.source_size),
                aligned_size=(i.face_image.shape[1], i.face_image.shape[0]), face_count=int(i.face_count),
                det_score=float(i.det_score), selection=str(i.selection), reading=i,
            )
            for i in found
        )
        return io.NodeOutput(to_image_batch([i.face_image for i in found]), FaceDetections(faces))


class ConsisIDLandmarkRenderer(io.ComfyNode):
    DISPLAY_NAME = "Landmark Renderer"
    LABEL = label(DISPLAY_NAME, node_ids.LANDMARK_RENDERER)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=node_ids.LANDMARK_RENDERER,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "Draws the 5 face keypoints (eyes, nose, mouth corners) on black, like ConsisID's keypoint condition. "
                "Only checkpoints trained with keypoints (is_kps in the transformer config) use this image; the "
                "released ConsisID-preview does not, so for it this is a diagnostic view."
            ),
            inputs=[
                Sockets.Face.Input("face", tooltip="From Face Crop&Align."),
                io.Combo.Input("frame", options=["aligned_face", "photo"], default="aligned_face", tooltip=(
                    "Draw the points where they are in the 512x512 aligned face (what Global Extractor encodes) "
                    "or where they are in the original photo.")),
                io.Image.Input("canvas", optional=True, tooltip=(
                    "Optional: only its size is used (the output has this size; points are scaled to it).")),
            ],
            outputs=[io.Image.Output(
                "landmarks", tooltip="Keypoint image(s), one per face, for Global Extractor's optional landmarks input.")],
        )

    @classmethod
    def execute(cls, face, frame, canvas=None) -> io.NodeOutput:
        from consisid_core.face import draw_keypoints

        with reported_as(cls.LABEL):
            if not face.faces:
                raise fail(cls.LABEL, "no face to draw; connect the face output of Face Crop&Align.")
            drawn = []
            for index, info in enumerate(face.faces):
                points, source = (info.face_kps, info.aligned_size) if frame == "aligned_face" else (info.kps, info.source_size)
                if canvas is not None:
                    target = canvas[min(index, canvas.shape[0] - 1)]
                    size = (int(target.shape[1]), int(target.shape[0]))
                else:
                    size = source
                drawn.append(draw_keypoints(size, points, source_size=source))
            if len({d.shape for d in drawn}) > 1:
                raise fail(cls.LABEL, "the photos have different sizes; give a canvas image to draw them at one size.")
        return io.NodeOutput(to_image_batch(drawn))


class ConsisIDLocalExtractor(io.ComfyNode):
    DISPLAY_NAME = "Local Extractor"
    LABEL = label(DISPLAY_NAME, node_ids.LOCAL_EXTRACTOR)

    @classmethod
    def define_schema(cls) -> io.Schema:
        legacy = " Used only with the legacy image input; with the face input, Face Crop&Align's choice applies."
        return io.Schema(
            node_id=node_ids.LOCAL_EXTRACTOR,
            display_name=cls.DISPLAY_NAME,
            category=CATEGORY,
            description=(
                "High-frequency identity: the ArcFace (antelopev2) embedding Face Crop&Align computed and EVA02-CLIP "
                "features of its parsed face, which the model's Q-Former turns into face tokens injected into the DiT. "
                "Connect Face Crop&Align's face output (the photo is read once); a batch of photos of the same person "
                "is averaged. The image input is kept only so workflows saved before the face input still run."
            ),
            inputs=[
                Sockets.FaceModels.Input("face_models", tooltip="From ConsisID Face Models Loader (EVA-CLIP runs here)."),
                io.Float.Input("face_scale", default=1.0, min=0.0, max=3.0, step=0.05, tooltip=(
                    "Strength of the face tokens in the DiT's cross-attention (1.0 as trained; lower gives the "
                    "prompt more freedom, higher sticks closer to the face).")),
                *selection_inputs(legacy),
                Sockets.Face.Input("face", optional=True, tooltip=(
                    "The face output of Face Crop&Align (one face per photo; several photos of the same person are "
                    "averaged into one identity).")),
                io.Image.Input("image", optional=True, tooltip=(
                    "Legacy: the photo itself, as workflows saved before the face input wired it. The photo is then "
                    "read a second time; connect the face input instead.")),
            ],
            outputs=[Sockets.Local.Output(
                "local", tooltip="Identity features of the person, for ConsisID Sampler's local_cond input.")],
        )

    @classmethod
    def execute(cls, face_models, image=None, face_scale=1.0, face_selection="largest", face_index=0,
                face=None) -> io.NodeOutput:
        from consisid_core.face import average_identities, encode_identity

        from . import comfy_bridge

        with reported_as(cls.LABEL):
            readings = cls._readings(face_models, face, image, selection_value(face_selection, face_index))
            models = face_models.get()
            found = [encode_identity(models, r, should_cancel=comfy_bridge.throw_if_interrupted) for r in readings]
            identity = average_identities(found)
        return io.NodeOutput(LocalFeatures(identity.id_cond, list(identity.id_vit_hidden), float(face_scale), len(found)))

    @classmethod
    def _readings(cls, face_models, face, image, selection) -> list:
        """The read faces: from Face Crop&Align's face output, or (legacy wiring) read here from the photo."""
        if face is not None:
            if image is not None:
                _log.warning("ConsisID: %s has both face and image connected; the face input is used and the "
                             "image is ignored", cls.LABEL)
            if not face.faces or any(f.reading is None for f in face.faces):
                raise fail(cls.LABEL, "the face input carries no read face; connect the face output of Face "
                                      "Crop&Align.")
            return [f.reading for f in face.faces]
        if image is None:
            raise fail(cls.LABEL, f"nothing to extract from: {REWIRE}.")
        _log.warning("ConsisID: %s", LEGACY_NOTE)
        return read_faces(cls.LABEL, face_models, image, selection, note=LEGACY_NOTE)
