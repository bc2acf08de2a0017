"""diffusers' group offloading (`diffusers.hooks`), fitted to how the engine calls its models.

Two tools, both diffusers': a `ModuleGroup` holding a whole model (model offload: onload for the stage, offload
after) and `apply_group_offloading(leaf_level, use_stream, record_stream)` (sequential offload: each layer on
the device while it runs, the next one copied on a side stream meanwhile). Host weights are pinned in place
beforehand (see pinning.py) and handed over with `low_cpu_mem_usage=True`: diffusers then keeps the very host
tensors (no copy) and, seeing them pinned, never calls `pin_memory()`. Offloading a streamed group only points
the parameters back at those host tensors: nothing is copied device -> host.

diffusers learns the layer order from the first forward of the module it was applied to. The engine calls the
transformer's parts and the VAE's encoder/decoder directly, so `finish_trace` closes the recording at the end of
a stage instead, once every layer has run (or a stage ran no new layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

HOST = torch.device("cpu")
GROUP_HOOK = "group_offloading"  # diffusers' hook names (diffusers.hooks.group_offloading)
TRACE_HOOK = "lazy_prefetch_group_offloading"
TRACKER_HOOK = "layer_execution_tracker"
_WHOLE = "_consisid_whole_group"  # model.__dict__ slot: (key, ModuleGroup) of the whole-model group


def stream_capable(device: torch.device) -> bool:
    """Copies can run on a side stream from pinned memory (CUDA, including ROCm builds)."""
    return device.type == "cuda" and torch.cuda.is_available()


def new_stream(device: torch.device):
    from diffusers.utils.torch_utils import TorchDeviceBackend

    return TorchDeviceBackend(device).Stream()


def own_tensors(model: torch.nn.Module) -> Iterator[torch.Tensor]:
    """Every parameter and buffer, once."""
    seen: set[int] = set()
    for tensor in (*model.parameters(), *model.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            yield tensor


# ---- model offload: one group per model ---------------------------------------------------------------

def whole_group(model: torch.nn.Module, device: torch.device, stream):
    """The diffusers ModuleGroup holding all of `model` (rebuilt when its tensors changed, e.g. LoRA layers)."""
    from diffusers.hooks.group_offloading import ModuleGroup

    key = (tuple(id(t) for t in own_tensors(model)), device, id(stream))
    cached = model.__dict__.get(_WHOLE)
    if cached is not None and cached[0] == key:
        return cached[1]
    # tensors listed, not modules=[model]: diffusers' streamed offload restores listed buffers but would leave a
    # module's buffers on the device
    group = ModuleGroup(modules=[], offload_device=HOST, onload_device=device, offload_leader=model,
                        onload_leader=model, parameters=list(model.parameters()), buffers=list(model.buffers()),
                        non_blocking=stream is not None, stream=stream, record_stream=stream is not None,
                        low_cpu_mem_usage=True)
    model.__dict__[_WHOLE] = (key, group)
    return group


def forget_whole_group(model: torch.nn.Module) -> None:
    model.__dict__.pop(_WHOLE, None)


def onload(group) -> None:
    """Bring the group onto its device and wait for the copies (a whole stage needs all of it at once)."""
    group.onload_()
    if group.stream is not None:
        group.stream.synchronize()


def group_tensors(group) -> Iterator[torch.Tensor]:
    for module in group.modules:
        yield from own_tensors(module)
    yield from group.parameters
    yield from group.buffers


def on_host(group) -> bool:
    return all(t.device.type == "cpu" for t in group_tensors(group))


def offload(group) -> None:
    """Drop the group's device copies (streamed groups point back at their host tensors; no copy back)."""
    if group.stream is not None or not on_host(group):
        group.offload_()
    if group.stream is not None:  # diffusers' streamed offload restores parameters only: a hooked module's own
        for module in group.modules:  # buffers (e.g. the fp8 layers' weight_scale) go back to their host copies
            for buffer in module.buffers():
                host = group.cpu_param_dict.get(buffer)
                if host is not None and buffer.data_ptr() != host.data_ptr():
                    buffer.data = host


# ---- sequential offload: diffusers' leaf-level group offloading --------------------------------------

@dataclass
class LayerStreaming:
    """What was hooked (to re-hook when layers are added or replaced) and how far the order recording got."""

    modules: list[torch.nn.Module]
    streams: bool
    executed: int = 0
    finished: bool = field(default=False)

    def current(self, model: torch.nn.Module) -> bool:
        return self.modules == list(model.modules())


def stream_layers(model: torch.nn.Module, device: torch.device, streams: bool) -> LayerStreaming:
    """Hook every layer of `model` with diffusers' leaf-level group offloading (on a side stream when `streams`)."""
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(model, onload_device=device, offload_device=HOST, offload_type="leaf_level",
                           non_blocking=streams, use_stream=streams, record_stream=streams, low_cpu_mem_usage=True)
    return LayerStreaming(list(model.modules()), streams, finished=not streams)


def layer_groups(model: torch.nn.Module) -> list:
    """The diffusers ModuleGroups hooked inside `model`, once each."""
    groups, seen = [], set()
    for module in model.modules():
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook(GROUP_HOOK) if registry is not None else None
        if hook is not None and id(hook.group) not in seen:
            seen.add(id(hook.group))
            groups.append(hook.group)
    return groups


def offload_layers(model: torch.nn.Module) -> None:
    """Drop every device copy still held: the running layer after a failure, a prefetched next layer."""
    for group in layer_groups(model):
        offload(group)


def unstream_layers(model: torch.nn.Module) -> None:
    """Remove diffusers' hooks (weights back on the host first)."""
    from diffusers.hooks import HookRegistry

    offload_layers(model)
    registry = HookRegistry.check_if_exists_or_initialize(model)
    for name in (TRACKER_HOOK, TRACE_HOOK, GROUP_HOOK):
        registry.remove_hook(name, recurse=True)


def finish_trace(model: torch.nn.Module, state: LayerStreaming) -> None:
    """End diffusers' order recording once a stage ran every layer or ran no new one; link the prefetch chain."""
    if state.finished:
        return
    registry = getattr(model, "_diffusers_hook", None)
    hook = registry.get_hook(TRACE_HOOK) if registry is not None else None
    if hook is not None:
        executed = {name for name, _ in hook.execution_order}
        tracked = getattr(hook, "_layer_execution_tracker_module_names", executed)
        stable = 0 < len(executed) == state.executed  # a whole stage ran and recorded no new layer
        if not (executed >= tracked or stable):
            state.executed = len(executed)
            return
        hook.post_forward(model, None)  # diffusers' own end of recording: next_group links in the order seen
    for group in layer_groups(model):
        if not any(True for _ in group.parameters) and not any(
                True for m in group.modules for _ in m.parameters()):
            group.onload_self = True  # buffer-only groups have no fallback when a prefetch missed: load themselves
    state.finished = True


def host_copies(models) -> dict[int, torch.Tensor]:
    """id(tensor) -> its host copy, for tensors that diffusers' groups keep one of."""
    out: dict[int, torch.Tensor] = {}
    for model in models:
        groups = layer_groups(model)
        for module in model.modules():
            whole = module.__dict__.get(_WHOLE)
            if whole is not None:
                groups.append(whole[1])
        for group in groups:
            for tensor, host in group.cpu_param_dict.items():
                out.setdefault(id(tensor), host)
    return out
