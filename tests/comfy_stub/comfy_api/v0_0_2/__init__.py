"""Stand-in for `comfy_api.v0_0_2`, the versioned V3 API ComfyUI 0.8 ships: the same io, ui and ComfyExtension
as `comfy_api.latest`."""

from comfy_api.latest import IO, UI, ComfyExtension, io, ui  # noqa: F401

__all__ = ["ComfyExtension", "io", "IO", "ui", "UI"]
