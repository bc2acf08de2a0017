"""Memory modes: keep models on the device, move whole models in and out, or stream layer by layer.

The offload modes keep ONE host copy of every weight (pinned when CUDA is present). Bringing a module in
copies host -> device; sending it out only rebinds the parameter to its host copy, dropping the device
copy: weights are never copied device -> host. Outside ComfyUI nothing else decides; inside it, the nodes
set `before_use` so ComfyUI's memory manager makes room (and may evict us) through `load`/`unload`.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Callable, Iterable, Iterator

import torch

from ..choices import MEMORY_MODES as MEMORY_MODES  # the list lives in consisid_core.choices

_HOST = "_consisid_host"  # per-module dict: tensor name -> its host copy, while a device copy is in use


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _on(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index in (None, device.index))


def _copy_to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The one host -> device weight copy (asynchronous from pinned memory)."""
    return tensor.to(device, non_blocking=True)


def _own_tensors(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """(name, tensor, is_parameter) for the module's own parameters and buffers."""
    for name, param in module._parameters.items():
        if param is not None:
            yield name, param, True
    for name, buf in module._buffers.items():
        if buf is not None:
            yield name, buf, False


def _set(module: torch.nn.Module, name: str, value: torch.Tensor, is_param: bool) -> None:
    """Rebind a parameter or buffer (parameters are swapped whole, so the host Parameter is never touched)."""
    if is_param:
        if not isinstance(value, torch.nn.Parameter):
            value = torch.nn.Parameter(value, requires_grad=False)
        module._parameters[name] = value
    else:
        module._buffers[name] = value


def module_bytes(model: torch.nn.Module) -> int:
    """Bytes of all parameters and buffers (wherever they are)."""
    return sum(t.nbytes for m in model.modules() for _, t, _ in _own_tensors(m))


def pin_host_copies(model: torch.nn.Module) -> None:
    """Move CPU weights into page-locked memory once, so host -> device copies can run asynchronously."""
    if not torch.cuda.is_available():
        return
    with torch.no_grad():
        for module in model.modules():
            for name, tensor, is_param in _own_tensors(module):
                if tensor.device.type == "cpu" and not tensor.is_pinned():
                    _set(module, name, tensor.detach().pin_memory(), is_param)


def swap_in(module: torch.nn.Module, device: torch.device) -> int:
    """Give the module's own tensors a device copy (the host copy is kept aside); returns bytes copied."""
    host = module.__dict__.setdefault(_HOST, {})
    moved = 0
    with torch.no_grad():
        for name, tensor, is_param in _own_tensors(module):
            if _on(tensor, device):
                continue
            host[name] = tensor
            _set(module, name, _copy_to(tensor.detach(), device), is_param)
            moved += tensor.nbytes
    return moved


def swap_out(module: torch.nn.Module) -> int:
    """Point the module's tensors back at their host copies, dropping the device copies; returns bytes freed."""
    host = module.__dict__.get(_HOST)
    if not host:
        return 0
    freed = 0
    is_param = module._parameters
    for name, value in host.items():
        current = module._parameters[name] if name in is_param else module._buffers.get(name)
        if current is not None and current.data_ptr() != value.data_ptr():
            freed += current.nbytes
        _set(module, name, value, name in is_param)
    host.clear()
    return freed


def _with_own_tensors(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if any(True for _ in _own_tensors(m))]


class _LayerStreamer:
    """Hooks that bring one module's weights in just before its forward and drop the device copy after.

    On CUDA the next module (in registration order, which is execution order for the DiT blocks) is
    copied on a side stream while the current one computes.
    """

    def __init__(self, device: torch.device, model: torch.nn.Module) -> None:
        self.device = device
        self.handles: list = []
        self.order = _with_own_tensors(model)
        self.following = {id(a): b for a, b in zip(self.order, self.order[1:])}
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" and torch.cuda.is_available() else None
        self.prefetched: tuple[torch.nn.Module, object] | None = None

    def before(self, module: torch.nn.Module) -> None:
        ready = self.prefetched
        self.prefetched = None
        if ready is not None and ready[0] is module:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(ready[1])
            for _, tensor, _ in _own_tensors(module):  # the side stream allocated them; main stream uses them
                tensor.record_stream(current)
        else:
            if ready is not None:  # prefetched a module that did not run next: drop it
                swap_out(ready[0])
            swap_in(module, self.device)
        nxt = self.following.get(id(module))
        if self.stream is not None and nxt is not None:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):
                swap_in(nxt, self.device)
                event = torch.cuda.Event()
                event.record(self.stream)
            self.prefetched = (nxt, event)

    def after(self, module: torch.nn.Module) -> None:
        swap_out(module)

    def finish(self) -> None:
        """Drop a prefetch left over at the end of a forward."""
        if self.prefetched is not None:
            swap_out(self.prefetched[0])
            self.prefetched = None

    def attach(self) -> None:
        for module in self.order:
            self.handles.append(module.register_forward_pre_hook(lambda m, args: self.before(m)))
            self.handles.append(module.register_forward_hook(lambda m, args, out: self.after(m)))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.finish()


class Placement:
    """Decides where each model lives and moves it for the stage that needs it.

    `host_copies` (default: every mode but `none`) keeps the weights' home in host RAM: releasing then only
    drops device copies. `managed` (ComfyUI): an outside memory manager decides residency, so every mode
    keeps host copies and nothing goes to the device before its first stage. `before_use(models)`, when set
    (by the ComfyUI nodes), runs before every stage.
    """

    def __init__(self, device: torch.device, mode: str = "none", host_copies: bool | None = None,
                 managed: bool = False) -> None:
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory mode must be one of {MEMORY_MODES}; got {mode!r}")
        self.device = torch.device(device)
        self.mode = mode
        self.managed = managed
        self.host_copies = managed or (mode != "none" if host_copies is None else bool(host_copies))
        self.before_use: Callable[[tuple[torch.nn.Module, ...]], None] | None = None
        self._streamers: dict[int, _LayerStreamer] = {}
        self._prepared: weakref.WeakSet = weakref.WeakSet()

    @property
    def keeps_on_device(self) -> bool:
        return self.mode == "none"

    def _prepare(self, model: torch.nn.Module) -> None:
        if model in self._prepared:
            return
        if self.host_copies and self.device.type != "cpu":
            pin_host_copies(model)
        self._prepared.add(model)

    def install(self, *models: torch.nn.Module) -> None:
        """Put models where this mode keeps them between stages (also after a release)."""
        for model in models:
            self._prepare(model)
            if self.keeps_on_device and not self.managed:
                self.load(model)
            elif self.mode == "sequential_offload":
                streamer = self._streamers.get(id(model))
                if streamer is not None and streamer.order != _with_own_tensors(model):
                    streamer.detach()  # modules were added or replaced since (e.g. LoRA layers): hook them too
                    streamer = None
                if streamer is None:
                    streamer = _LayerStreamer(self.device, model)
                    streamer.attach()
                    self._streamers[id(model)] = streamer

    def load(self, model: torch.nn.Module) -> int:
        """Bring a whole model onto the device (keeping host copies if this placement has them); bytes copied."""
        self._prepare(model)
        if not self.host_copies:
            moved = self.device_bytes(model, on_host=True)
            if moved:
                model.to(self.device)
            return moved
        return sum(swap_in(module, self.device) for module in model.modules())

    def unload(self, model: torch.nn.Module) -> int:
        """Drop the device copies of a model (host copies stay, nothing is copied back); bytes freed."""
        streamer = self._streamers.get(id(model))
        if streamer is not None:
            streamer.finish()
        if not self.host_copies:  # mode none without host copies: the one case that must copy back
            freed = 0 if self.device.type == "cpu" else self.device_bytes(model)
            if freed:
                model.to("cpu")
            return freed
        return sum(swap_out(module) for module in model.modules())

    def device_bytes(self, model: torch.nn.Module, on_host: bool = False) -> int:
        """Bytes of the model's tensors currently on the device (or, with on_host, not on it)."""
        return sum(t.nbytes for m in model.modules() for _, t, _ in _own_tensors(m) if _on(t, self.device) != on_host)

    @contextlib.contextmanager
    def use(self, *models: torch.nn.Module) -> Iterator[None]:
        """Within the block the models compute on the device; in model_offload they leave it after."""
        if self.before_use is not None:
            self.before_use(models)
        self.install(*models)
        if self.managed and self.keeps_on_device:  # (the manager normally loaded them in before_use)
            for model in models:
                self.load(model)
        moving = self.mode == "model_offload"
        try:
            if moving:
                for model in models:
                    self.load(model)
            yield
        finally:
            if moving or self.mode == "sequential_offload":  # (sequential: also after a failed layer)
                for model in models:
                    self.unload(model)
            if moving:
                _empty_cache(self.device)

    @contextlib.contextmanager
    def use_part(self, model: torch.nn.Module, part: torch.nn.Module) -> Iterator[None]:
        """Like `use(model)`, but model_offload moves only `part` (e.g. the face extractor, not the whole DiT)."""
        if self.mode != "model_offload":
            with self.use(model):
                yield
            return
        if self.before_use is not None:
            self.before_use((part,))
        try:
            self.load(part)
            yield
        finally:
            self.unload(part)
            _empty_cache(self.device)

    def release(self, *models: torch.nn.Module) -> None:
        """Take models off the device (e.g. when ComfyUI asks for memory); they come back on next use."""
        for model in models:
            streamer = self._streamers.pop(id(model), None)
            if streamer is not None:
                streamer.detach()
            self.unload(model)
        _empty_cache(self.device)


def host_tensors(models: Iterable[torch.nn.Module]) -> dict[str, int]:
    """name -> data_ptr of every host-resident weight (tests: host copies must keep their storage)."""
    out = {}
    for i, model in enumerate(models):
        for mname, module in model.named_modules():
            host = module.__dict__.get(_HOST) or {}
            for name, tensor, _ in _own_tensors(module):
                value = host.get(name, tensor)
                if value.device.type == "cpu":
                    out[f"{i}.{mname}.{name}"] = value.data_ptr()
    return out
