"""Stand-in for `comfy_api.latest`: `io`, `ui` (and their IO/UI aliases) and `ComfyExtension`."""

from __future__ import annotations

from abc import ABC, abstractmethod

from comfy_api.latest import _io_public as io
from comfy_api.latest import _ui_public as ui


class ComfyExtension(ABC):
    """What a V3 pack's `comfy_entrypoint()` returns: ComfyUI awaits on_load(), then get_node_list()."""

    async def on_load(self) -> None:  # noqa: B027 - optional hook, empty by design (as in ComfyUI)
        """Called when the extension is loaded (set up shared resources here)."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The node classes this extension provides."""


IO = io
UI = ui

__all__ = ["ComfyExtension", "io", "IO", "ui", "UI"]
