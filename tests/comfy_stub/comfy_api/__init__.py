"""Stand-in for ComfyUI 0.8's `comfy_api` package: the V3 node schema (`comfy_api.v0_0_2.io`) the pack's nodes use.

Written from reading ComfyUI 0.8's comfy_api/latest/_io.py, _ui.py and comfy_api/internal; only the subset the pack
needs, with the same names, signatures and V1-compatible dicts. `comfy_stub.activate()` makes it importable.
"""
