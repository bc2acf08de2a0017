"""Memory modes: keep models on the device, move whole models in and out, or stream layer by layer."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

MEMORY_MODES = ("none", "model_offload", "sequential_offload")


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _LayerStreamer:
    """Forward hooks that bring a module's own weights to the device for its forward, then send them back."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.handles: list = []

    def _move(self, module: torch.nn.Module, device: torch.device) -> None:
        # async only towards the accelerator: a non-blocking copy back to host memory may be read too early
        non_blocking = device.type != "cpu"
        for param in module.parameters(recurse=False):
            param.data = param.data.to(device, non_blocking=non_blocking)
        for name, buf in module.named_buffers(recurse=False):
            module._buffers[name] = buf.to(device, non_blocking=non_blocking)

    def attach(self, model: torch.nn.Module) -> None:
        for module in model.modules():
            has_own = any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))
            if not has_own:
                continue
            self.handles.append(module.register_forward_pre_hook(lambda m, args: self._move(m, self.device)))
            self.handles.append(module.register_forward_hook(lambda m, args, out: self._move(m, torch.device("cpu"))))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


class Placement:
    """Decides where each model lives and moves it for the stage that needs it."""

    def __init__(self, device: torch.device, mode: str = "none") -> None:
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory mode must be one of {MEMORY_MODES}; got {mode!r}")
        self.device = device
        self.mode = mode
        self._streamers: dict[int, _LayerStreamer] = {}

    @property
    def keeps_on_device(self) -> bool:
        return self.mode == "none"

    def install(self, *models: torch.nn.Module) -> None:
        """Put models where this mode keeps them between stages (also after a release)."""
        for model in models:
            if self.keeps_on_device:
                if next(model.parameters()).device != self.device:
                    model.to(self.device)
            elif self.mode == "sequential_offload":
                if id(model) not in self._streamers:
                    model.to("cpu")
                    streamer = _LayerStreamer(self.device)
                    streamer.attach(model)
                    self._streamers[id(model)] = streamer
            else:
                model.to("cpu")

    @contextlib.contextmanager
    def use(self, *models: torch.nn.Module) -> Iterator[None]:
        """Within the block the models compute on the device; in model_offload they return to CPU after."""
        self.install(*models)
        moving = self.mode == "model_offload"
        if moving:
            for model in models:
                model.to(self.device)
        try:
            yield
        finally:
            if moving:
                for model in models:
                    model.to("cpu")
                _empty_cache(self.device)

    @contextlib.contextmanager
    def use_part(self, model: torch.nn.Module, part: torch.nn.Module) -> Iterator[None]:
        """Like `use(model)`, but model_offload moves only `part` (e.g. the face extractor, not the whole DiT)."""
        if self.mode != "model_offload":
            with self.use(model):
                yield
            return
        part.to(self.device)
        try:
            yield
        finally:
            part.to("cpu")
            _empty_cache(self.device)

    def release(self, *models: torch.nn.Module) -> None:
        """Move models off the device (e.g. when ComfyUI asks for memory); they come back on next use."""
        for model in models:
            streamer = self._streamers.pop(id(model), None)
            if streamer is not None:
                streamer.detach()
            model.to("cpu")
        _empty_cache(self.device)
