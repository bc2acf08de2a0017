"""Page-lock host weights where they already are (cudaHostRegister), never through torch's pinned allocator.

`Tensor.pin_memory()` copies into torch's caching host allocator, which rounds every block up to a power of
two and keeps it for the process: 21 GiB of bf16 weights became 33 GiB of pinned memory that never came back.
Registering the existing storages instead pins exactly the bytes held (plus the part of a shared page between
two neighbouring small tensors), and unregistering gives it back. Storages that share a page are registered
as one range (CUDA refuses two registrations of one page); every registered storage is kept alive until it is
unregistered, so no freed memory stays registered.
"""

from __future__ import annotations

import logging
import mmap
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

_log = logging.getLogger("ConsisID")
PAGE = mmap.PAGESIZE


def cuda_register(ptr: int, nbytes: int) -> bool:
    """Page-lock [ptr, ptr + nbytes) in place (flags 0, as ComfyUI's pin_memory); True on success."""
    return int(torch.cuda.cudart().cudaHostRegister(ptr, nbytes, 0)) == 0


def cuda_unregister(ptr: int) -> bool:
    """Undo `cuda_register` for the range starting at ptr; True on success."""
    return int(torch.cuda.cudart().cudaHostUnregister(ptr)) == 0


def _device_sync() -> None:
    """Copies from a range may still be in flight: wait for them before unpinning it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass(frozen=True)
class PinStats:
    """Pinned bytes (what CUDA page-locked) against the bytes of the storages they hold."""

    pinned: int
    held: int

    @property
    def ratio(self) -> float:
        return self.pinned / self.held if self.held else 1.0


def _ranges(storages: Iterable[torch.UntypedStorage]) -> dict[int, int]:
    """start -> nbytes of the ranges to register: one per storage, merged where two storages share a page."""
    spans = sorted((s.data_ptr(), s.data_ptr() + s.nbytes()) for s in storages)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start // PAGE <= (merged[-1][1] - 1) // PAGE:  # starts in the last range's final page
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return {start: end - start for start, end in merged}


class HostPins:
    """The host storages one Placement keeps page-locked; `register`/`unregister` are seams for tests."""

    def __init__(self, register: Callable[[int, int], bool] | None = None,
                 unregister: Callable[[int], bool] | None = None) -> None:
        self.register = register or cuda_register
        self.unregister = unregister or cuda_unregister
        self._storages: dict[int, torch.UntypedStorage] = {}  # data_ptr -> storage, kept alive while registered
        self._registered: dict[int, int] = {}  # start -> nbytes, as given to `register`

    @staticmethod
    def _host_storages(tensors: Iterable[torch.Tensor]) -> dict[int, torch.UntypedStorage]:
        out = {}
        for tensor in tensors:
            if tensor.device.type == "cpu" and tensor.numel():
                storage = tensor.untyped_storage()
                if storage.nbytes():
                    out[storage.data_ptr()] = storage
        return out

    def pin(self, tensors: Iterable[torch.Tensor]) -> bool:
        """Page-lock the storages behind the host tensors; False when CUDA refused one (that range stays unpinned)."""
        new = {p: s for p, s in self._host_storages(tensors).items() if p not in self._storages}
        return self._sync({**self._storages, **new}) if new else True

    def unpin(self, tensors: Iterable[torch.Tensor]) -> None:
        """Release the page lock of these tensors' storages (the rest stays pinned)."""
        gone = self._host_storages(tensors)
        if any(p in self._storages for p in gone):
            self._sync({p: s for p, s in self._storages.items() if p not in gone})

    def release(self) -> None:
        """Unpin everything (the engine was released or dropped)."""
        if self._storages:
            self._sync({})

    def _sync(self, wanted: dict[int, torch.UntypedStorage]) -> bool:
        """Register exactly the ranges `wanted` needs, unregistering the others; False if CUDA refused one."""
        target = _ranges(wanted.values())
        stale = [(s, n) for s, n in self._registered.items() if target.get(s) != n]
        if stale:
            _device_sync()
        for start, _ in stale:
            if not self.unregister(start):
                _log.warning("cudaHostUnregister failed for a weight range at %#x", start)
            del self._registered[start]
        ok = True
        for start, nbytes in target.items():
            if start in self._registered:
                continue
            if self.register(start, nbytes):
                self._registered[start] = nbytes
            else:
                ok = False
                _log.warning("cudaHostRegister refused %d bytes of weights: they stay unpinned", nbytes)
        self._storages = dict(wanted)
        return ok

    def stats(self) -> PinStats:
        """Bytes page-locked now against the bytes of the storages held (at most ~1.0x plus shared pages)."""
        return PinStats(sum(self._registered.values()), sum(s.nbytes() for s in self._storages.values()))

    def is_pinned(self, tensor: torch.Tensor) -> bool:
        """Whether the tensor's bytes lie inside a range this object registered."""
        ptr = tensor.data_ptr()
        return any(start <= ptr and ptr + tensor.nbytes <= start + n for start, n in self._registered.items())

    def registered(self) -> dict[int, int]:
        return dict(self._registered)
