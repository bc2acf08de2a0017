"""Face Crop&Align, Landmark Renderer and Local Extractor: photos in, aligned faces and identity features out."""

from __future__ import annotations

import numpy as np
from consisid_core import choices

from .errors import fail, label, reported_as
from .types import CATEGORY, FACE, FACE_MODELS, LOCAL, FaceDetections, FaceInfo, LocalFeatures

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


def _extract(models, image, selection):
    from consisid_core.face import extract_identity

    from . import comfy_bridge

    return extract_identity(models, image, selection, should_cancel=comfy_bridge.throw_if_interrupted)


def same_photo_note(node: str) -> str:
    """Which face node found a photo problem, and that the other one would report the same problem."""
    names = (ConsisIDFaceCropAlign.DISPLAY_NAME, ConsisIDLocalExtractor.DISPLAY_NAME)
    found_by = next((n for n in names if node.startswith(f"{n} (")), node)
    others = " and ".join(n for n in names if n != found_by)
    return (f"Found by {found_by}; {others} looks for the face in the same photo, so it is the same photo "
            "problem whichever node reports it.")


def identities(node: str, face_models, image, selection) -> list:
    """One Identity per image of a ComfyUI IMAGE batch; a no-face error names the image and the node that found it."""
    from consisid_core.face import NoFaceError

    found = []
    for index in range(image.shape[0]):
        try:
            found.append(face_models.identity(image[index], selection, _extract))
        except NoFaceError as exc:
            where = f"image {index + 1} of {image.shape[0]}: " if image.shape[0] > 1 else ""
            raise fail(node, f"{where}{exc} {same_photo_note(node)}") from exc
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
        "the face is (5 keypoints, box) for the Landmark Renderer. A photo without a usable face stops the "
        "run with a message saying what to change."
    )
    RETURN_TYPES = ("IMAGE", FACE)
    RETURN_NAMES = ("aligned_face", "face")
    OUTPUT_TOOLTIPS = (
        "The aligned face, 512x512, colour on white (one per input image).",
        "Keypoints and box of each chosen face (for the Landmark Renderer).",
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
            found = identities(self.LABEL, face_models, image, selection_value(face_selection, face_index))
        faces = tuple(
            FaceInfo(
                kps=np.asarray(i.kps, dtype=np.float32), bbox=np.asarray(i.bbox, dtype=np.float32),
                face_kps=np.asarray(i.face_kps, dtype=np.float32), source_size=tuple(i.source_size),
                aligned_size=(i.face_image.shape[1], i.face_image.shape[0]), face_count=int(i.face_count),
                det_score=float(i.det_score), selection=str(i.selection),
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
        "High-frequency identity: ArcFace (antelopev2) and EVA02-CLIP features of the person's face, which the "
        "model's Q-Former turns into face tokens injected into the DiT. Give several photos of the same "
        "person as one batch to average them."
    )
    RETURN_TYPES = (LOCAL,)
    RETURN_NAMES = ("local",)
    OUTPUT_TOOLTIPS = ("Identity features of the person, for ConsisID Sampler's local_cond input.",)
    FUNCTION = "extract"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "face_models": (FACE_MODELS, {"tooltip": "From ConsisID Face Models Loader."}),
                "image": ("IMAGE", {"tooltip": (
                    "Photo(s) of the person (the original photo, not the aligned face). A batch of several "
                    "photos of the same person is averaged into one identity.")}),
                "face_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": (
                    "Strength of the face tokens in the DiT's cross-attention (1.0 as trained; lower gives the "
                    "prompt more freedom, higher sticks closer to the face).")}),
                **SELECTION_INPUTS,
            }
        }

    def extract(self, face_models, image, face_scale, face_selection, face_index):
        from consisid_core.face import average_identities

        with reported_as(self.LABEL):
            found = identities(self.LABEL, face_models, image, selection_value(face_selection, face_index))
            identity = average_identities(found)
        return (LocalFeatures(identity.id_cond, list(identity.id_vit_hidden), float(face_scale), len(found)),)
