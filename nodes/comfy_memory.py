"""Our models under ComfyUI's memory manager, as ordinary ComfyUI models.

T5, the transformer, the VAE and the face networks each get ComfyUI's stock `ModelPatcher` (no override of
its loading internals) around a small named container, after `comfy_ops.adopt` gave their layers ComfyUI's
casting operations. ComfyUI then decides per layer what is resident and what is cast on use (`--lowvram`,
`--novram`, `--reserve-vram`, async offload, its bounded pinned memory, "loaded completely/partially"), and
evicts our models like its own. Each engine stage asks for its models through `load_models_gpu` with
`memory_required` from `consisid_core.engine.memory_estimate`. LoRAs are weight patches on a clone of the
transformer's patcher (see `lora_patcher`).

Memory modes (the DiT Loader's `memory_mode`) are expressed through ComfyUI's own mechanism:
`auto` (default): ComfyUI decides; `none`: the stage loads all three models, so they stay resident;
`model_offload`: a stage first unloads our other models; `sequential_offload`: the stage's model is loaded
as ComfyUI's `--novram` would (a minimal resident budget, every layer cast on use).
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from typing import Callable

import torch

from . import comfy_bridge, comfy_ops

_log = logging.getLogger("ConsisID")

AUTO = "auto"  # the DiT Loader's default memory mode: ComfyUI decides


def _mm():
    import comfy.model_management as mm

    return mm


class ComfyModel(torch.nn.Module):
    """A named container: ComfyUI logs the class name and keeps its bookkeeping (`device`, ...) on it."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner


_CONTAINERS: dict[str, type] = {}


def _container(name: str) -> type:
    if name not in _CONTAINERS:
        _CONTAINERS[name] = type(name, (ComfyModel,), {"__doc__": f"{name} as a ComfyUI model."})
    return _CONTAINERS[name]


def make_patcher(model: torch.nn.Module, name: str, load_device: torch.device,
                 offload_device: torch.device | None = None, on_unload: Callable[[], None] | None = None):
    """ComfyUI's stock ModelPatcher for `model` (wrapped in a container called `name`, layers adopted)."""
    import comfy.model_patcher
    from comfy.patcher_extension import CallbacksMP

    load_device = torch.device(load_device)
    container = _container(name)(comfy_ops.adopt(model, load_device))
    offload = torch.device("cpu") if offload_device is None else offload_device
    patcher = comfy.model_patcher.ModelPatcher(container, load_device=load_device, offload_device=offload)
    def detached(_patcher, unpatch_all: bool) -> None:
        if unpatch_all:  # (load_models_gpu detaches a clone it is about to reload with unpatch_all=False)
            _log.info("ConsisID: ComfyUI unloaded %s", name)
            if on_unload is not None:
                on_unload()

    patcher.add_callback(CallbacksMP.ON_DETACH, detached)
    return patcher


@contextlib.contextmanager
def _novram():
    """ComfyUI's `--novram` budget for one load (the sequential_offload override)."""
    mm = _mm()
    state = getattr(mm, "vram_state", None)
    if state is None or not hasattr(mm, "VRAMState"):
        yield
        return
    mm.vram_state = mm.VRAMState.NO_VRAM
    try:
        yield
    finally:
        mm.vram_state = state


def _entry(mm, patcher):
    """ComfyUI's loaded-model entry of this very patcher, or None."""
    return next((e for e in mm.current_loaded_models if e.model is patcher), None)


def load(patchers, memory_required: int = 0, mode: str = AUTO) -> None:
    """Ask ComfyUI to load these patchers for a stage that needs `memory_required` bytes of activations.

    A patcher already loaded *partially* with its current patches is not loaded again: ComfyUI 0.8 re-plans a
    partial load from scratch, and a layer it had patched in place can then also get a lowvram LoRA patch (the
    LoRA applied twice). For it, only room for the activations is made (`free_memory`, keeping it loaded)."""
    mm = _mm()
    fresh, kept = [], []
    for p in patchers:
        if p is None:
            continue
        entry = _entry(mm, p)
        partial = entry is not None and p.model.model_lowvram and p.model.current_weight_patches_uuid == p.patches_uuid
        (kept if partial else fresh).append((p, entry))
    devices = {torch.device(p.load_device) for p, _ in kept}
    for device in devices - {torch.device("cpu")}:
        mm.free_memory(memory_required, device, keep_loaded=[e for _, e in kept])
    if not fresh:
        return
    models = [p for p, _ in fresh]
    if mode == "sequential_offload":
        with _novram():
            mm.load_models_gpu(models, memory_required=memory_required)
    else:
        mm.load_models_gpu(models, memory_required=memory_required)


def unload(patchers) -> int:
    """Unload these patchers through ComfyUI's loaded-model list (as POST /free would); returns how many."""
    mm = _mm()
    ours = [p for p in patchers if p is not None]
    done = 0
    for i in range(len(mm.current_loaded_models) - 1, -1, -1):
        entry = mm.current_loaded_models[i]
        patcher = entry.model
        if patcher is not None and any(patcher.is_clone(p) for p in ours):
            entry.model_unload()
            mm.current_loaded_models.pop(i)
            done += 1
    return done


class EnginePatchers:
    """The engine's three patchers and the LoRA clone in use; routes each stage through ComfyUI."""

    def __init__(self, engine, mode: str, on_unload: Callable[[], None] | None = None) -> None:
        device = engine.placement.device
        mm = _mm()
        self.mode = mode
        self.base = {
            "text_encoder": make_patcher(engine.text_encoder, "T5TextEncoder", device,
                                         _offload(mm, "text_encoder_offload_device"), on_unload),
            "transformer": make_patcher(engine.transformer, "ConsisIDTransformer", device,
                                        _offload(mm, "unet_offload_device"), on_unload),
            "vae": make_patcher(engine.vae, "CogVideoXVAE", device, _offload(mm, "vae_offload_device"), on_unload),
        }
        self.by_model = {id(engine.text_encoder): "text_encoder", id(engine.transformer): "transformer",
                         id(engine.vae): "vae", id(engine.transformer.local_facial_extractor): "transformer"}
        self.lora_stack: tuple = ()
        self.lora_clone = None
        self._lora_state: dict = {}

    def patcher(self, kind: str):
        if kind == "transformer" and self.lora_clone is not None:
            return self.lora_clone
        return self.base[kind]

    def all(self) -> list:
        return [self.patcher(k) for k in self.base]

    def before_use(self, models, memory_required: int = 0) -> None:
        kinds = [self.by_model[id(m)] for m in models if id(m) in self.by_model]
        if self.mode == "none":
            kinds = list(self.base)
        elif self.mode == "model_offload":
            unload([self.base[k] for k in self.base if k not in kinds])
        load([self.patcher(k) for k in dict.fromkeys(kinds)], memory_required, self.mode)

    def use_loras(self, stack: tuple) -> None:
        """The transformer's patcher for this LoRA stack: a clone with weight patches (strength changes re-patch)."""
        stack = tuple((str(p), float(s)) for p, s in stack)
        if stack == self.lora_stack:
            return
        self.lora_stack = stack
        if not stack:
            self.lora_clone = None
            return
        from . import comfy_lora

        self._lora_state = {p: v for p, v in self._lora_state.items() if p in dict(stack)}  # only the stack's files
        clone = self.base["transformer"].clone()
        for path, strength in stack:
            comfy_lora.add_to_patcher(clone, self._patches(path), strength)
        self.lora_clone = clone

    def _patches(self, path: str) -> dict:
        if path not in self._lora_state:
            from . import comfy_lora

            self._lora_state[path] = comfy_lora.patches_for(self.base["transformer"].model, path)
        return self._lora_state[path]

    def forget(self) -> None:
        """Unload everything (dropping the engine)."""
        unload(list(self.base.values()) + [self.lora_clone])


def _offload(mm, name: str) -> torch.device:
    fn = getattr(mm, name, None)
    return torch.device("cpu") if fn is None else fn()


def manage_engine(engine, mode: str = AUTO, on_unload: Callable[[], None] | None = None) -> EnginePatchers:
    """Register the engine's T5, transformer and VAE with ComfyUI and route each stage through it."""
    patchers = EnginePatchers(engine, mode, on_unload)
    ref = weakref.ref(patchers)

    def before_use(models, memory_required: int = 0) -> None:
        alive = ref()
        if alive is not None:
            alive.before_use(models, memory_required)

    engine.placement.before_use = before_use
    engine.comfy_patchers = patchers  # keeps them alive as long as the engine
    engine.should_cancel = comfy_bridge.throw_if_interrupted
    return patchers


class FaceNetworks(torch.nn.Module):
    """RetinaFace, BiSeNet and EVA-CLIP in one module: what ComfyUI loads for the face nodes."""

    def __init__(self, networks) -> None:
        super().__init__()
        self.networks = torch.nn.ModuleList(networks)


def manage_face_models(models, on_unload: Callable[[], None] | None = None):
    """A stock patcher for the face networks; unloading also frees onnxruntime's CUDA arenas."""
    def unloaded() -> None:
        models.offload()
        if on_unload is not None:
            on_unload()

    models.placement = None  # ComfyUI moves the networks; the face code never does
    bundle = FaceNetworks(models.networks())
    return make_patcher(bundle, "ConsisIDFaceModels", models.device, torch.device("cpu"), unloaded)


def forget(patchers) -> None:
    """Unload patchers about to be forgotten through ComfyUI's list."""
    unload(list(patchers))


class PartialTransformer:
    """The engine's transformer loaded by ComfyUI at a fixed weight budget (bench/gpu_check.py's partial-load rows).

    `load(device, lowvram_model_memory)` lists it in ComfyUI's loaded models exactly as `load_models_gpu` does on a
    card with that much free memory; the stages then keep it as loaded (see `load`)."""

    def __init__(self, patchers: EnginePatchers) -> None:
        self.patcher = patchers.patcher("transformer")

    def model_size(self) -> int:
        return self.patcher.model_size()

    def loaded_size(self) -> int:
        return self.patcher.loaded_size()

    def load(self, device, lowvram_model_memory: int = 0) -> None:
        mm = _mm()
        unload([self.patcher])
        entry = mm.LoadedModel(self.patcher)
        entry.model_load(lowvram_model_memory)
        mm.current_loaded_models.insert(0, entry)

    def detach(self) -> None:
        unload([self.patcher])


def make_comfy_model(engine, device) -> PartialTransformer:
    """Put a managed engine under ComfyUI (all stages through its memory manager); its transformer to load partially."""
    return PartialTransformer(manage_engine(engine, AUTO))
