"""Memory modes: keep models on the device, move whole models in and out, or stream them layer by layer.

Outside ComfyUI the moves are diffusers' (see offload_groups.py): `model_offload` onloads a whole-model
`ModuleGroup` for each stage and offloads it after; `sequential_offload` is diffusers' leaf-level group
offloading on a side stream with record_stream, prefetching in the layer order it recorded. Host weights are
page-locked in place (pinning.py; never `Tensor.pin_memory()`), and offloading only points parameters back at
them: nothing is copied device -> host. `managed` (inside ComfyUI): ComfyUI's ModelPatcher moves every weight;
this Placement then never moves, copies or pins a tensor, and only calls `before_use` before each stage.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Callable, Iterable, Iterator

import torch

from ..choices import MEMORY_MODES
from . import offload_groups as groups
from .pinning import HostPins, PinStats


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _on(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index in (None, device.index))


def module_bytes(model: torch.nn.Module) -> int:
    """Bytes of all parameters and buffers (wherever they are)."""
    return sum(t.nbytes for t in groups.own_tensors(model))


class Placement:
    """Decides where each model lives and moves it for the stage that needs it.

    `host_copies` (default: every mode but `none`) keeps the weights' home in host RAM: releasing then only
    drops device copies. `before_use(models, memory_required)`, when set (by the ComfyUI nodes), runs before
    every stage; with `managed` it is all that happens.
    """

    def __init__(self, device: torch.device, mode: str = "none", host_copies: bool | None = None,
                 managed: bool = False) -> None:
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory mode must be one of {MEMORY_MODES}; got {mode!r}")
        self.device = torch.device(device)
        self.mode = mode
        self.managed = managed
        self.host_copies = mode != "none" if host_copies is None else bool(host_copies)
        self.before_use: Callable[[tuple[torch.nn.Module, ...], int], None] | None = None
        self.pins = HostPins()
        self._streams = groups.stream_capable(self.device) and not managed
        self._stream = None
        self._unpinned: set[int] = set()  # ids of models CUDA refused to pin: moved without a side stream
        self._streamers: dict[int, groups.LayerStreaming] = {}  # id(model) -> its diffusers layer hooks
        weakref.finalize(self, self.pins.release)  # pinned ranges go back when the engine is dropped

    @property
    def keeps_on_device(self) -> bool:
        return self.mode == "none"

    # ---- preparing ------------------------------------------------------------------------------------
    def _streamed(self, model: torch.nn.Module) -> bool:
        """Pin the model's host weights in place (once); True when its copies may use a side stream."""
        if not self._streams or id(model) in self._unpinned:
            return False
        host = [t for t in groups.own_tensors(model) if not _on(t, self.device)]
        if not self.pins.pin(host):
            self._unpinned.add(id(model))
            self.pins.unpin(host)  # not half pinned, and not retried with every other model's pinning
            return False
        return True

    def _whole(self, model: torch.nn.Module):
        streamed = self._streamed(model)
        if streamed and self._stream is None:
            self._stream = groups.new_stream(self.device)
        return groups.whole_group(model, self.device, self._stream if streamed else None)

    def install(self, *models: torch.nn.Module) -> None:
        """Put models where this mode keeps them between stages (also after a release)."""
        if self.managed:
            return
        for model in models:
            if self.keeps_on_device:
                self.load(model)
            elif self.mode == "sequential_offload":
                state = self._streamers.get(id(model))
                if state is not None and not state.current(model):  # layers added or replaced (e.g. LoRA)
                    groups.unstream_layers(model)
                    kept = {id(t) for t in groups.own_tensors(model)}
                    self.pins.unpin(t for m in state.modules for t in (*m.parameters(recurse=False),
                                                                       *m.buffers(recurse=False)) if id(t) not in kept)
                    state = None
                if state is None:
                    streamed = self._streamed(model)
                    self._streamers[id(model)] = groups.stream_layers(model, self.device, streamed)
            else:
                self._streamed(model)

    # ---- moving ---------------------------------------------------------------------------------------
    def load(self, model: torch.nn.Module) -> int:
        """Bring a whole model onto the device; bytes now there that were not. Sequential offload: 0 (layers
        come in when they run); managed: 0 (ComfyUI moves it)."""
        if self.managed or self.mode == "sequential_offload":
            return 0
        before = self.device_bytes(model)
        if not self.device_bytes(model, on_host=True):
            return 0
        if self.host_copies:
            groups.onload(self._whole(model))
        else:
            model.to(self.device)
        return self.device_bytes(model) - before

    def unload(self, model: torch.nn.Module) -> int:
        """Drop the device copies of a model (host copies stay, nothing is copied back); bytes freed."""
        if self.managed:
            return 0
        before = self.device_bytes(model)
        if id(model) in self._streamers:
            groups.offload_layers(model)
        if self.host_copies:
            for module in model.modules():
                whole = module.__dict__.get(groups._WHOLE)
                if whole is not None:
                    groups.offload(whole[1])
        elif before:  # mode none without host copies: the one case that must copy back
            model.to("cpu")
        return before - self.device_bytes(model)

    def device_bytes(self, model: torch.nn.Module, on_host: bool = False) -> int:
        """Bytes of the model's tensors currently on the device (or, with on_host, not on it)."""
        return sum(t.nbytes for t in groups.own_tensors(model) if _on(t, self.device) != on_host)

    # ---- stages ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def use(self, *models: torch.nn.Module, memory_required: int = 0) -> Iterator[None]:
        """Within the block the models compute on the device; in the offload modes they leave it after."""
        if self.before_use is not None:
            self.before_use(models, memory_required)
        with self._stage(models, models):
            yield

    @contextlib.contextmanager
    def use_part(self, model: torch.nn.Module, part: torch.nn.Module, memory_required: int = 0) -> Iterator[None]:
        """Like `use(model)`, but model_offload moves only `part` (e.g. the face extractor, not the whole DiT)."""
        if self.before_use is not None:
            self.before_use((part,), memory_required)
        with self._stage((model,), (part,) if self.mode == "model_offload" else (model,)):
            yield

    @contextlib.contextmanager
    def _stage(self, models: tuple, moved: tuple) -> Iterator[None]:
        if self.managed:
            yield
            return
        self.install(*models)
        moving = self.mode == "model_offload"
        try:
            if moving:
                for model in moved:
                    self.load(model)
            yield
            for model in models:  # a stage that ran to the end: its layer order counts
                state = self._streamers.get(id(model))
                if state is not None:
                    groups.finish_trace(model, state)
        finally:
            if moving or self.mode == "sequential_offload":  # (also after a failed stage)
                for model in moved:
                    self.unload(model)
                _empty_cache(self.device)

    def release(self, *models: torch.nn.Module) -> None:
        """Take models off the device and unpin their host weights (e.g. the engine is released)."""
        if self.managed:
            return
        for model in models:
            self.unload(model)
            if self._streamers.pop(id(model), None) is not None:
                groups.unstream_layers(model)
            for module in model.modules():
                groups.forget_whole_group(module)
            self.pins.unpin(groups.own_tensors(model))
            self._unpinned.discard(id(model))
        _empty_cache(self.device)

    def pinned(self) -> PinStats:
        """Pinned host bytes against the bytes they hold (see pinning.PinStats)."""
        return self.pins.stats()


def host_tensors(models: Iterable[torch.nn.Module]) -> dict[str, int]:
    """name -> data_ptr of every weight's host copy (tests: host copies must keep their storage)."""
    models = list(models)
    copies = groups.host_copies(models)
    out = {}
    for i, model in enumerate(models):
        for name, tensor in (*model.named_parameters(), *model.named_buffers()):
            host = copies.get(id(tensor), tensor)  # the group's host copy, else the tensor where it lives
            if host.device.type == "cpu":
                out[f"{i}.{name}"] = host.data_ptr()
    return out
