"""Loaded models shared across runs: same loader settings -> the same object, no reload.

A loader returns a *handle* (the CONSISID_MODEL / CONSISID_FACE_MODELS value). The handle loads its
models on first use and can always load them again, so the registry is free to release them:

- Same settings in a later run -> the registry gives back the same handle (already loaded).
- New settings -> handles of other settings drop their models first (one ConsisID model in memory).
- Each loaded model (T5, transformer, VAE, face networks) is a stock ModelPatcher in ComfyUI's loaded-model
  list (nodes/comfy_memory.py). When ComfyUI unloads one ("Unload models", POST /free, another model
  needing the room), it goes back to RAM as any ComfyUI model does (back at next use, no reload from disk)
  and the registry stops pinning the handle; if ComfyUI also clears its node cache ("Free model and node
  cache"), nothing references it any more and its RAM is freed too.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from consisid_core.runtime import RuntimeSetting

from . import comfy_bridge, comfy_memory
from .comfy_memory import AUTO

_log = logging.getLogger("ConsisID")


@dataclass(frozen=True)
class EngineSettings:
    """What identifies a loaded DiT model: its folder and the one checked runtime setting it runs with."""

    path: str
    runtime: RuntimeSetting  # device, dtype, attention, memory mode, fp8 storage, compile: resolved once
    comfy_managed: bool = True  # memory_mode "auto": ComfyUI's memory manager places the models (runtime: "none")

    @property
    def memory_mode(self) -> str:
        """The loader's memory choice: "auto" (ComfyUI decides) or the runtime's override."""
        return AUTO if self.comfy_managed else self.runtime.memory_mode


@dataclass(frozen=True)
class FaceSettings:
    """What identifies loaded face models: their folders, where onnxruntime runs, and the runtime setting."""

    face_encoder_dir: str
    antelopev2_dir: str | None
    onnx_provider: str
    runtime: RuntimeSetting  # device and EVA-CLIP dtype


class EngineHandle:
    """A ConsisID engine that (re)loads itself when needed."""

    kind = "engine"

    def __init__(self, settings: EngineSettings, loader: Callable[[EngineSettings], Any]) -> None:
        self.settings = settings
        self._loader = loader
        self._engine = None
        self._patchers = None  # comfy_memory.EnginePatchers
        self.loads = 0
        self.preview_map = None  # latent -> RGB map, fitted on first preview

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def get(self, lora_stack: tuple = ()):
        """The engine, loading it (and dropping other models) if it was never loaded or was dropped.

        `lora_stack` ((file, strength), ...) is what ConsisID LoRA nodes put on it; a plain get() removes them.
        """
        if self._engine is None:
            REGISTRY.drop_others(self)
            self._engine = self._loader(self.settings)
            self._patchers = comfy_memory.manage_engine(self._engine, self.settings.memory_mode, _unpin(self))
            self.loads += 1
        self._patchers.use_loras(tuple(lora_stack))  # weight patches on a clone: no reload, no peft
        return self._engine

    @property
    def patchers(self):
        """The engine's ComfyUI patchers (None until loaded)."""
        return self._patchers

    def drop(self) -> None:
        """Forget the engine entirely: device copies dropped, nothing copied to RAM; RAM freed once unreferenced."""
        if self._engine is not None:
            self._patchers.forget()
            self._patchers = None
            self._engine = None
            self.preview_map = None
            comfy_bridge.soft_empty_cache()


class FaceModelsHandle:
    """Face models that (re)load themselves (each photo is read once, by Face Crop&Align: nothing to memoise)."""

    kind = "face"

    def __init__(self, settings: FaceSettings, loader: Callable[[FaceSettings], Any]) -> None:
        self.settings = settings
        self._loader = loader
        self._models = None
        self._patcher = None
        self.loads = 0

    @property
    def loaded(self) -> bool:
        return self._models is not None

    def get(self):
        """The face models, loaded if needed and brought onto their device through ComfyUI's memory manager."""
        if self._models is None:
            self._models = self._loader(self.settings)
            self._patcher = comfy_memory.manage_face_models(self._models, _unpin(self))
            self.loads += 1
        from consisid_core.engine.memory_estimate import face_networks

        comfy_memory.load([self._patcher], face_networks())
        return self._models

    def offload(self) -> None:
        """Free the accelerator for sampling: device copies and onnxruntime CUDA arenas go, host copies stay."""
        if self._patcher is not None:
            comfy_memory.unload([self._patcher])
        elif self._models is not None:
            self._models.offload()

    def drop(self) -> None:
        if self._models is not None:
            comfy_memory.forget([self._patcher])
            self._models.offload()
        self._models = None
        self._patcher = None


def _unpin(handle) -> Callable[[], None]:
    ref = weakref.ref(handle)

    def unpin() -> None:
        alive = ref()
        if alive is not None:
            REGISTRY.unpin(alive)

    return unpin


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

    def unpin(self, handle) -> None:
        """ComfyUI unloaded one of the handle's models: keep it only while ComfyUI's node cache holds it."""
        with self._lock:
            if self._pinned.get(handle.settings) is handle:
                del self._pinned[handle.settings]

    def offload_faces(self) -> None:
        """Before sampling: take every face model off the accelerator."""
        for handle in self.handles("face"):
            handle.offload()

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
