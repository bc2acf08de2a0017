"""Stand-in for the ui results of ComfyUI 0.8 (`comfy_api.latest._ui`) that carry no file work: a node returns them
as `NodeOutput(ui=...)` and the executor stores `as_dict()` in the history."""

from __future__ import annotations

from comfy_api.latest._io import FolderType, _UIOutput


class SavedResult(dict):
    """One saved file of a history entry: filename, subfolder, type."""

    def __init__(self, filename: str, subfolder: str, type: FolderType):
        super().__init__(filename=filename, subfolder=subfolder, type=type.value)

    @property
    def filename(self) -> str:
        return self["filename"]

    @property
    def subfolder(self) -> str:
        return self["subfolder"]

    @property
    def type(self) -> FolderType:
        return FolderType(self["type"])


class PreviewText(_UIOutput):
    """A text shown under the node: {"text": (value,)}."""

    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


class PreviewVideo(_UIOutput):
    """Saved videos shown on the node: {"images": values, "animated": (True,)}."""

    def __init__(self, values: list[SavedResult | dict], **kwargs):
        self.values = values

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (True,)}


__all__ = ["SavedResult", "PreviewText", "PreviewVideo"]
