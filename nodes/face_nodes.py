"""Face Crop&Align, Landmark Renderer and Local Extractor: photos in, aligned faces and identity features out."""

from __future__ import annotations

import logging

import numpy as np
from consisid_core import choices

from .errors import fail, label, reported_as
from .types import CATEGORY, FACE, FACE_MODELS, LOCAL, FaceDetections, FaceInfo, LocalFeatures

_log = logging.getLogger("ConsisID")

SELECTIONS = [*choices.FACE_SELECTIONS, choices.FACE_INDEX]
SELECTION_TOOLTIP = (
    "Which face to use when a photo shows several: largest (default), central (closest to the image "
    "centre), index (face_index, counted left to right from 0), or reference (exactly the original code: "
    "ArcFace of the largest face, crop of the most central one)."
)
INDEX_TOOLTIP = "Used when face_selection is 'index': 0 is the left-most face, 1 the next one, and so on."


SELECTION_INPUTS = {
    "face_selection": (SELECTIONS, {"default": "largest", "tooltip": SELECTION_TOOLTIP}),
    "face_index": ("INT", {"default": 0, "min": 0, "max": 64, "step": 1, "tooltip": INDEX_TOOLTIP}),
}


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


class ConsisIDFaceCropAlign:
    DISPLAY_NAME = "Face Crop&Align"
    LABEL = label(DISPLAY_NAME, "ConsisIDFaceCropAlign")
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Detects one face per photo and aligns it to the 512x512 FFHQ template on a white background (face "
        "parsing removes hair/background), the image ConsisID's Global Extractor encodes. Also outputs where "
        "the face is (5 keypoints, box) for the Landmark Renderer and, on the same face output, the ArcFace "
        "embedding and parsed face the Local Extractor needs: the photo is read once, here. A photo without a "
        "usable face stops the run with a message saying what to change."
    )
    RETURN_TYPES = ("IMAGE", FACE)
    RETURN_NAMES = ("aligned_face", "face")
    OUTPUT_TOOLTIPS = (
        "The aligned face, 512x512, colour on white (one per input image).",
        "Each chosen face: keypoints and box (for the Landmark Renderer), ArcFace embedding and parsed face (for "
        "the Local Extractor).",
    )
    FUNCTION = "align"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "face_models": (FACE_MODELS, {"tooltip": "From ConsisID Face Models Loader."}),
                "image": ("IMAGE", {"tooltip": (
                    "Photo(s) of the person: a clear, frontal, well-lit face at least about 100 px wide. "
                    "Each image of a batch is aligned separately.")}),
                **SELECTION_INPUTS,
            }
        }

    def align(self, face_models, image, face_selection, face_index):
        with reported_as(self.LABEL):
            found = read_faces(self.LABEL, face_models, image, selection_value(face_selection, face_index))
        faces = tuple(
            FaceInfo(
                kps=np.asarray(i.kps, dtype=np.float32), bbox=np.asarray(i.bbox, dtype=np.float32),
                face_kps=np.asarray(i.face_kps, dtype=np.float32), source_size=tuple(i.source_size),
                aligned_size=(i.face_image.shape[1], i.face_image.shape[0]), face_count=int(i.face_count),
                det_score=float(i.det_score), selection=str(i.selection), reading=i,
            )
            for i in found
        )
        return (to_image_batch([i.face_image for i in found]), FaceDetections(faces))


class ConsisIDLandmarkRenderer:
    DISPLAY_NAME = "Landmark Renderer"
    LABEL = label(DISPLAY_NAME, "ConsisIDLandmarkRenderer")
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Draws the 5 face keypoints (eyes, nose, mouth corners) on black, like ConsisID's keypoint condition. "
        "Only checkpoints trained with keypoints (is_kps in the transformer config) use this image; the "
        "released ConsisID-preview does not, so for it this is a diagnostic view."
    )
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("landmarks",)
    OUTPUT_TOOLTIPS = ("Keypoint image(s), one per face, for Global Extractor's optional landmarks input.",)
    FUNCTION = "render"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "face": (FACE, {"tooltip": "From Face Crop&Align."}),
                "frame": (["aligned_face", "photo"], {"default": "aligned_face", "tooltip": (
                    "Draw the points where they are in the 512x512 aligned face (what Global Extractor encodes) "
                    "or where they are in the original photo.")}),
            },
            "optional": {
                "canvas": ("IMAGE", {"tooltip": (
                    "Optional: only its size is used (the output has this size; points are scaled to it).")}),
            },
        }

    def render(self, face, frame, canvas=None):
        from consisid_core.face import draw_keypoints

        with reported_as(self.LABEL):
            if not face.faces:
                raise fail(self.LABEL, "no face to draw; connect the face output of Face Crop&Align.")
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
                raise fail(self.LABEL, "the photos have different sizes; give a canvas image to draw them at one size.")
        return (to_image_batch(drawn),)


class ConsisIDLocalExtractor:
    DISPLAY_NAME = "Local Extractor"
    LABEL = label(DISPLAY_NAME, "ConsisIDLocalExtractor")
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "High-frequency identity: the ArcFace (antelopev2) embedding Face Crop&Align computed and EVA02-CLIP "
        "features of its parsed face, which the model's Q-Former turns into face tokens injected into the DiT. "
        "Connect Face Crop&Align's face output (the photo is read once); a batch of photos of the same person "
        "is averaged. The image input is kept only so workflows saved before the face input still run."
    )
    RETURN_TYPES = (LOCAL,)
    RETURN_NAMES = ("local",)
    OUTPUT_TOOLTIPS = ("Identity features of the person, for ConsisID Sampler's local_cond input.",)
    FUNCTION = "extract"

    @classmethod
    def INPUT_TYPES(cls):
        legacy = " Used only with the legacy image input; with the face input, Face Crop&Align's choice applies."
        return {
            "required": {
                "face_models": (FACE_MODELS, {"tooltip": "From ConsisID Face Models Loader (EVA-CLIP runs here)."}),
                "face_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": (
                    "Strength of the face tokens in the DiT's cross-attention (1.0 as trained; lower gives the "
                    "prompt more freedom, higher sticks closer to the face).")}),
                "face_selection": (SELECTIONS, {"default": "largest", "tooltip": SELECTION_TOOLTIP + legacy}),
                "face_index": ("INT", {"default": 0, "min": 0, "max": 64, "step": 1, "tooltip": INDEX_TOOLTIP + legacy}),
            },
            "optional": {
                "face": (FACE, {"tooltip": (
                    "The face output of Face Crop&Align (one face per photo; several photos of the same person are "
                    "averaged into one identity).")}),
                "image": ("IMAGE", {"tooltip": (
                    "Legacy: the photo itself, as workflows saved before the face input wired it. The photo is then "
                    "read a second time; connect the face input instead.")}),
            },
        }

    def extract(self, face_models, image=None, face_scale=1.0, face_selection="largest", face_index=0, face=None):
        from consisid_core.face import average_identities, encode_identity

        from . import comfy_bridge

        with reported_as(self.LABEL):
            readings = self._readings(face_models, face, image, selection_value(face_selection, face_index))
            models = face_models.get()
            found = [encode_identity(models, r, should_cancel=comfy_bridge.throw_if_interrupted) for r in readings]
            identity = average_identities(found)
        return (LocalFeatures(identity.id_cond, list(identity.id_vit_hidden), float(face_scale), len(found)),)

    def _readings(self, face_models, face, image, selection) -> list:
        """The read faces: from Face Crop&Align's face output, or (legacy wiring) read here from the photo."""
        if face is not None:
            if image is not None:
                _log.warning("ConsisID: %s has both face and image connected; the face input is used and the "
                             "image is ignored", self.LABEL)
            if not face.faces or any(f.reading is None for f in face.faces):
                raise fail(self.LABEL, "the face input carries no read face; connect the face output of Face "
                                       "Crop&Align.")
            return [f.reading for f in face.faces]
        if image is None:
            raise fail(self.LABEL, f"nothing to extract from: {REWIRE}.")
        _log.warning("ConsisID: %s", LEGACY_NOTE)
        return read_faces(self.LABEL, face_models, image, selection, note=LEGACY_NOTE)
