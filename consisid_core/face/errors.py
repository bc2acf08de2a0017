"""Errors of the face pipeline; every message says what was wrong and what to do."""

from __future__ import annotations

from ..errors import ConsisIDError, ModelFilesError
from ..image_input import InvalidImageError  # the one image normaliser's error, re-exported here

__all__ = ["FaceSelectionError", "FaceWeightsError", "InvalidImageError", "NoFaceError"]


class NoFaceError(ConsisIDError, ValueError):
    """No usable face was found in a photo (never an IndexError/AttributeError)."""


class FaceSelectionError(ConsisIDError, ValueError):
    """`face_selection` names a face that does not exist (e.g. an index past the last face)."""


class FaceWeightsError(ModelFilesError):
    """Face model files are missing or misplaced; `missing` and `searched` list the paths."""

    def __init__(self, message: str, missing: tuple = (), searched: tuple = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.searched = tuple(searched)
