"""Cancellation points: long stages call `checkpoint(hook)` between units of work (a model call, a frame chunk).

A hook either raises itself (ComfyUI's `throw_exception_if_processing_interrupted`) or returns True to
ask for a stop, which raises `Cancelled`. Stages clean up in `finally` blocks, so the models stay usable.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from .errors import ConsisIDError

CancelHook = Callable[[], object]


class Cancelled(ConsisIDError):
    """The run was cancelled by the caller's hook."""


def checkpoint(hook: CancelHook | None) -> None:
    """Stop here if the hook asks to (a hook that raises stops with its own exception)."""
    if hook is not None and hook():
        raise Cancelled("cancelled")


@contextlib.contextmanager
def per_call(module, hook: CancelHook | None) -> Iterator[None]:
    """Check `hook` before every forward of `module` within the block (e.g. each VAE decoder chunk/tile)."""
    if hook is None:
        yield
        return
    handle = module.register_forward_pre_hook(lambda m, args: checkpoint(hook))
    try:
        yield
    finally:
        handle.remove()
