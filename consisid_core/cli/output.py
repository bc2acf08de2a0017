"""Writing the CLI's video without ever leaving half a file or replacing one the user did not give up."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import validate


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while inside, so `with`/`finally` clean-ups run on `kill` too."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_video_file(frames, out: str | os.PathLike, fps: float, overwrite: bool = False) -> Path:
    """Encode to a hidden partial file next to `out`, then rename it into place (checked again just before)."""
    from ..video import write_mp4

    out = Path(out).expanduser()
    validate.check_output_file(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        write_mp4(frames, partial, fps=fps)
        validate.check_output_file(out, overwrite=overwrite)  # someone may have created it meanwhile
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    return out


def one_line_warnings() -> None:
    """Print the pack's own warnings as `warning: <message>` (no source line), each message once."""
    from ..notices import ConsisIDWarning

    original = warnings.formatwarning

    def _format(message, category, filename, lineno, line=None):
        if isinstance(category, type) and issubclass(category, ConsisIDWarning):
            return f"warning: {message}\n"
        return original(message, category, filename, lineno, line)

    warnings.formatwarning = _format
    warnings.filterwarnings("once", category=ConsisIDWarning)  # the pre-checks and the engine may say the same
