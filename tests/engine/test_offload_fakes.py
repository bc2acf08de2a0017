"""A pretend CUDA for the memory modes on a machine without one (imported by the offload tests; no tests here).

Only what CUDA itself does is played: streams (synchronize counts, record_stream records), cudaHostRegister /
cudaHostUnregister (a spy that checks ranges), `Tensor.is_pinned` (inside a registered range) and
`Tensor.pin_memory` (must never run: it raises). diffusers' group offloading and our Placement run unchanged.
The device is the CPU and a host -> device copy is a clone with its own storage ("on the device" = "is one of
those clones"), so models still compute and a layer that runs from its host weights is visible. diffusers is
told to onload to `cuda` (never touched: copies, streams and input moves are the fakes'). diffusers' "did the
prefetch miss?" check compares devices, and a clone is on the CPU too: when that check asks to copy a group
whose weights already are device copies, the copy is skipped here, as the check would skip it on CUDA.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from consisid_core.runtime import offload, offload_groups, pinning


@dataclass
class CudaSpy:
    registered: dict[int, int] = field(default_factory=dict)  # live: start -> nbytes
    register_calls: list[tuple[int, int]] = field(default_factory=list)
    unregister_calls: list[int] = field(default_factory=list)
    syncs: int = 0
    recorded: int = 0
    clones: set[int] = field(default_factory=set)  # data_ptrs of pretend device copies (clone mode)
    transfers: list[int] = field(default_factory=list)  # id(param) of every host -> device copy, in order
    own_group: object = None  # the group whose own hook is running (see `transfer`)

    def register(self, ptr: int, nbytes: int) -> bool:
        for start, n in self.registered.items():
            assert ptr + nbytes <= start or start + n <= ptr, "a range was registered twice"
        self.register_calls.append((ptr, nbytes))
        self.registered[ptr] = nbytes
        return True

    def unregister(self, ptr: int) -> bool:
        assert ptr in self.registered, "unregistered a pointer never registered"
        self.unregister_calls.append(ptr)
        del self.registered[ptr]
        return True

    def covers(self, tensor: torch.Tensor) -> bool:
        ptr = tensor.data_ptr()
        return any(s <= ptr and ptr + tensor.nbytes <= s + n for s, n in self.registered.items())


class _Stream:
    def __init__(self, spy: CudaSpy) -> None:
        self.spy = spy

    def synchronize(self) -> None:
        self.spy.syncs += 1


def pretend_cuda(monkeypatch) -> CudaSpy:
    """Install the pretend CUDA; returns the spy."""
    from diffusers import hooks
    from diffusers.hooks import group_offloading
    from diffusers.utils import torch_utils

    spy = CudaSpy()
    compute = object()

    class Backend:
        def __init__(self, device=None) -> None:
            self.device = device

        def Stream(self):  # noqa: N802 (torch's name)
            return _Stream(spy)

        def stream(self, stream):
            return contextlib.nullcontext()

        def current_stream(self):
            return compute

        def empty_cache(self) -> None:
            pass

    def pin_memory(self, *args, **kwargs):
        raise AssertionError("Tensor.pin_memory() was called: it goes through torch's rounding host allocator")

    def record_stream(self, stream):
        spy.recorded += 1

    monkeypatch.setattr(pinning, "cuda_register", spy.register)
    monkeypatch.setattr(pinning, "cuda_unregister", spy.unregister)
    monkeypatch.setattr(pinning, "_device_sync", lambda: None)
    monkeypatch.setattr(offload_groups, "stream_capable", lambda device: True)
    monkeypatch.setattr(group_offloading, "TorchDeviceBackend", Backend)
    monkeypatch.setattr(torch_utils, "TorchDeviceBackend", Backend)
    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self, *a: spy.covers(self))
    monkeypatch.setattr(torch.Tensor, "record_stream", record_stream)

    real_transfer = group_offloading.ModuleGroup._transfer_tensor_to_device

    def transfer(self, tensor, source, default_stream):
        if self.stream is None:  # no stream (pinning was refused): a plain synchronous move, CPU to CPU here
            return real_transfer(self, tensor, source, default_stream)
        if self is spy.own_group and not self.onload_self and tensor.data_ptr() in spy.clones:
            return  # the "prefetch missed?" fallback on a prefetched group: on CUDA its device check skips it
        assert source.device.type == "cpu" and spy.covers(source), "copies start from registered host memory"
        spy.transfers.append(id(tensor))
        copy = source.clone()
        spy.clones.add(copy.data_ptr())
        tensor.data = copy
        if self.record_stream:
            copy.record_stream(default_stream)

    real_apply = hooks.apply_group_offloading

    def apply(module, onload_device, offload_device="cpu", **kwargs):
        assert torch.device(onload_device).type == "cpu" and torch.device(offload_device) == torch.device("cpu")
        onload = torch.device("cuda") if kwargs.get("use_stream") else onload_device
        return real_apply(module, onload, offload_device, **kwargs)

    real_pre_forward = group_offloading.GroupOffloadingHook.pre_forward

    def pre_forward(self, module, *args, **kwargs):
        spy.own_group = self.group
        try:
            return real_pre_forward(self, module, *args, **kwargs)
        finally:
            spy.own_group = None

    monkeypatch.setattr(group_offloading.GroupOffloadingHook, "pre_forward", pre_forward)
    monkeypatch.setattr(group_offloading.ModuleGroup, "_transfer_tensor_to_device", transfer)
    monkeypatch.setattr(group_offloading, "send_to_device", lambda data, device, **kwargs: data)
    monkeypatch.setattr(hooks, "apply_group_offloading", apply)
    monkeypatch.setattr(offload, "_on", lambda tensor, device: tensor.data_ptr() in spy.clones)
    return spy
