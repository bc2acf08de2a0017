"""Everything the nodes take from ComfyUI, in one place, imported lazily.

ComfyUI modules (`folder_paths`, `comfy.*`) are imported inside the functions so the node modules import
anywhere (tests use the stand-ins in tests/comfy_stub). Nothing here knows about ConsisID models.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterator

from consisid_core import catalog

_log = logging.getLogger("ConsisID")

MODEL_FOLDER_KEY = catalog.CONSISID_FOLDER_KEY  # models/consisid/<name>/
INSIGHTFACE_FOLDER_KEY = catalog.INSIGHTFACE_FOLDER_KEY  # models/insightface/models/antelopev2/


def folder_paths():
    import folder_paths as module

    return module


def register_model_folders() -> None:
    """Register `consisid` and `insightface` model folders (kept if extra_model_paths.yaml added them first)."""
    fp = folder_paths()
    for key in (MODEL_FOLDER_KEY, INSIGHTFACE_FOLDER_KEY):
        fp.add_model_folder_path(key, os.path.join(fp.models_dir, key))


def _roots(key: str) -> list[Path]:
    fp = folder_paths()
    try:
        paths = fp.get_folder_paths(key)
    except KeyError:
        paths = []
    default = os.path.join(fp.models_dir, key)
    return [Path(p) for p in dict.fromkeys([*paths, default])]


def model_roots() -> list[Path]:
    """Folders searched for ConsisID model folders (ComfyUI's `consisid` paths, models/consisid last)."""
    return _roots(MODEL_FOLDER_KEY)


def insightface_roots() -> list[Path]:
    """ComfyUI's `insightface` folders (models/insightface and extra_model_paths.yaml entries)."""
    return _roots(INSIGHTFACE_FOLDER_KEY)


def torch_device():
    import comfy.model_management as mm

    return mm.get_torch_device()


_release_suspended = threading.local()


def ours_suspended() -> bool:
    """True while the pack itself calls ComfyUI's unload (so the hook must not release our own models)."""
    return getattr(_release_suspended, "value", False)


@contextlib.contextmanager
def _suspend_our_release() -> Iterator[None]:
    previous = ours_suspended()
    _release_suspended.value = True
    try:
        yield
    finally:
        _release_suspended.value = previous


def free_comfy_memory() -> None:
    """Ask ComfyUI to unload its own models and empty the device cache (ours stay as they are)."""
    import comfy.model_management as mm

    with _suspend_our_release():
        mm.unload_all_models()
    mm.soft_empty_cache()


def soft_empty_cache() -> None:
    import comfy.model_management as mm

    mm.soft_empty_cache()


def install_unload_hook(release: Callable[[], None]) -> None:
    """Wrap ComfyUI's `unload_all_models` once so it also calls `release`.

    That function is what the "Unload models" button and `POST /free` end in (main.py's prompt worker),
    and what ComfyUI calls after an out-of-memory error; the wrapper calls ComfyUI's original first.
    """
    import comfy.model_management as mm

    current = mm.unload_all_models
    if getattr(current, "_consisid_hook", False):
        return

    @functools.wraps(current)
    def unload_all_models(*args, **kwargs):
        result = current(*args, **kwargs)
        if not ours_suspended():
            try:
                release()
            except Exception:  # never break ComfyUI's own memory management
                _log.exception("ConsisID: releasing models after unload_all_models failed")
        return result

    unload_all_models._consisid_hook = True
    mm.unload_all_models = unload_all_models


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
