"""Loaded models shared across runs: same loader settings -> the same object, no reload.

A loader returns a *handle* (the CONSISID_MODEL / CONSISID_FACE_MODELS value). The handle loads its
models on first use and can always load them again, so the registry is free to release them:

- Same settings in a later run -> the registry gives back the same handle (already loaded).
- New settings -> handles of other settings drop their models first (one ConsisID model in memory).
- ComfyUI frees memory ("Unload models", POST /free, after an out-of-memory error: all end in
  `comfy.model_management.unload_all_models`, which comfy_bridge wraps once): the engine moves off the
  GPU (kept in RAM, back on the GPU at next use), face models on an accelerator are dropped, and the
  registry stops pinning the handles; if ComfyUI also clears its node cache ("Free model and node
  cache"), nothing references them any more and their RAM is freed too.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import comfy_bridge

_log = logging.getLogger("ConsisID")


@dataclass(frozen=True)
class EngineSettings:
    """What identifies a loaded DiT model."""

    path: str
    precision: str
    memory_mode: str
    attention: str
    device: str


@dataclass(frozen=True)
class FaceSettings:
    """What identifies loaded face models."""

    face_encoder_dir: str
    antelopev2_dir: str | None
    onnx_provider: str
    device: str
    precision: str


class EngineHandle:
    """A ConsisID engine that (re)loads itself when needed."""

    kind = "engine"

    def __init__(self, settings: EngineSettings, loader: Callable[[EngineSettings], Any]) -> None:
        self.settings = settings
        self._loader = loader
        self._engine = None
        self.loads = 0
        self.preview_map = None  # latent -> RGB map, fitted on first preview

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def get(self):
        """The engine, loading it (and dropping other models) if it was never loaded or was dropped."""
        if self._engine is None:
            REGISTRY.drop_others(self)
            self._engine = self._loader(self.settings)
            self.loads += 1
        return self._engine

    def release(self) -> None:
        """Move the models off the accelerator; they come back at the next stage that needs them."""
        if self._engine is not None:
            self._engine.release()

    def drop(self) -> None:
        """Forget the engine entirely (its RAM is freed once nothing else holds it)."""
        if self._engine is not None:
            self._engine.release()
            self._engine = None
            self.preview_map = None


class FaceModelsHandle:
    """Face models that (re)load themselves, plus a small memo of identities already extracted."""

    kind = "face"
    MEMO_SIZE = 8

    def __init__(self, settings: FaceSettings, loader: Callable[[FaceSettings], Any]) -> None:
        self.settings = settings
        self._loader = loader
        self._models = None
        self.loads = 0
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._models is not None

    def get(self):
        if self._models is None:
            self._models = self._loader(self.settings)
            self.loads += 1
        return self._models

    @property
    def on_accelerator(self) -> bool:
        return self.settings.device != "cpu" or self.settings.onnx_provider != "CPU"

    def release(self) -> None:
        """Face models cannot move between devices: on an accelerator they are dropped (reloaded on use)."""
        if self.on_accelerator:
            self.drop()

    def drop(self) -> None:
        self._models = None
        self._memo.clear()

    def identity(self, image, selection, extract: Callable[[Any, Any, Any], Any]):
        """`extract(models, image, selection)`, memoised by image content so two nodes on one photo run it once."""
        key = (_fingerprint(image), repr(selection))
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        result = extract(self.get(), image, selection)
        with self._lock:
            self._memo[key] = result
            while len(self._memo) > self.MEMO_SIZE:
                self._memo.popitem(last=False)
        return result


def _fingerprint(image) -> tuple:
    import numpy as np

    array = image.detach().cpu().contiguous().numpy() if hasattr(image, "detach") else np.ascontiguousarray(image)
    return (array.shape, str(array.dtype), hashlib.sha1(array.tobytes()).hexdigest())


class Registry:
    """Handles by settings: pinned (strong) until ComfyUI frees memory, then only weakly held."""

    def __init__(self) -> None:
        self._pinned: dict[Any, Any] = {}
        self._live: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._lock = threading.RLock()

    def handle(self, settings, factory: Callable[[], Any]):
        """The handle for `settings`, created by `factory` when none is alive."""
        with self._lock:
            handle = self._live.get(settings)
            if handle is None:
                handle = factory()
                self._live[settings] = handle
            self._pinned[settings] = handle
            return handle

    def handles(self, kind: str | None = None) -> list:
        with self._lock:
            return [h for h in list(self._live.values()) if kind is None or h.kind == kind]

    def drop_others(self, keep) -> None:
        """Before loading `keep`: drop every other handle of its kind (only one set of big models in memory)."""
        with self._lock:
            for handle in self.handles(keep.kind):
                if handle is not keep and handle.loaded:
                    _log.info("ConsisID: releasing %s to load %s", handle.settings, keep.settings)
                    handle.drop()
                    self._pinned.pop(handle.settings, None)

    def release_all(self) -> None:
        """ComfyUI asked for memory: release every handle and stop pinning them."""
        with self._lock:
            handles = self.handles()
            self._pinned.clear()
        for handle in handles:
            handle.release()
        if handles:
            comfy_bridge.soft_empty_cache()
            _log.info("ConsisID: released %d cached model(s) at ComfyUI's request", len(handles))

    def clear(self) -> None:
        """Drop everything (tests)."""
        with self._lock:
            for handle in self.handles():
                handle.drop()
            self._pinned.clear()
            self._live = weakref.WeakValueDictionary()


REGISTRY = Registry()


def settings_path(path: Path) -> str:
    return str(Path(path).resolve())
