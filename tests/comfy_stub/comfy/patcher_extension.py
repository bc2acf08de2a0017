"""Stand-in for ComfyUI 0.8 `comfy/patcher_extension.py`: the callback names ModelPatcher uses."""

from __future__ import annotations


class CallbacksMP:
    ON_CLONE = "on_clone"
    ON_LOAD = "on_load_after"
    ON_DETACH = "on_detach_after"
    ON_CLEANUP = "on_cleanup"

    @classmethod
    def init_callbacks(cls):
        return {}
