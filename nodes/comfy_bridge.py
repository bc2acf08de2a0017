"""Everything the nodes take from ComfyUI, in one place, imported lazily.

ComfyUI modules (`folder_paths`, `comfy.*`) are imported inside the functions so the node modules import
anywhere (tests use the stand-ins in tests/comfy_stub). Nothing here knows about ConsisID models.
"""

from __future__ import annotations

import os
from pathlib import Path

from consisid_core import catalog, model_folder

MODEL_FOLDER_KEY = catalog.CONSISID_FOLDER_KEY  # models/consisid/<name>/
INSIGHTFACE_FOLDER_KEY = catalog.INSIGHTFACE_FOLDER_KEY  # models/insightface/models/antelopev2/
LORA_FOLDER_KEY = "consisid_loras"  # models/consisid_loras/<name>.safetensors (ConsisID LoRA node)


def folder_paths():
    import folder_paths as module

    return module


def register_model_folders() -> None:
    """Register the `consisid`, `insightface` and `consisid_loras` model folders.

    Folders that extra_model_paths.yaml added first are kept."""
    fp = folder_paths()
    for key in (MODEL_FOLDER_KEY, INSIGHTFACE_FOLDER_KEY, LORA_FOLDER_KEY):
        fp.add_model_folder_path(key, os.path.join(fp.models_dir, key))


def model_roots() -> list[Path]:
    """Folders searched for ConsisID model folders (ComfyUI's `consisid` paths, models/consisid last)."""
    return model_folder.registered_roots(folder_paths(), MODEL_FOLDER_KEY)


def insightface_roots() -> list[Path]:
    """ComfyUI's `insightface` folders (models/insightface and extra_model_paths.yaml entries)."""
    return model_folder.registered_roots(folder_paths(), INSIGHTFACE_FOLDER_KEY)


def torch_device():
    import comfy.model_management as mm

    return mm.get_torch_device()


def soft_empty_cache() -> None:
    import comfy.model_management as mm

    mm.soft_empty_cache()


def throw_if_interrupted() -> None:
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()


def progress_bar(total: int):
    import comfy.utils

    return comfy.utils.ProgressBar(total)


def preview_settings() -> tuple[bool, int]:
    """(previews on?, max preview size) from ComfyUI's --preview-method / the frontend's per-prompt choice."""
    try:
        from comfy.cli_args import LatentPreviewMethod, args
    except ImportError:
        return False, 512
    return args.preview_method != LatentPreviewMethod.NoPreviews, int(getattr(args, "preview_size", 512))
