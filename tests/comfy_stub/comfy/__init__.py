"""Stand-in for ComfyUI's `comfy` package (only `utils`, `model_management` and `cli_args`)."""
