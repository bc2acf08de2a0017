"""What the CLI prints and writes: the video (never half a file, never replacing one unasked), refusals, warnings."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import validate
from ..output_paths import write_through_partial


REFUSAL_GRACE_S = 3.0


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
    from .. import video

    out = Path(out).expanduser()
    validate.check_output_file(out, overwrite=overwrite)
    return write_through_partial(out, lambda partial: video.write_mp4(frames, partial, fps=fps), overwrite=overwrite)


def report_refusal(exc: BaseException) -> None:
    """Print a refusal as one `error:` line, from rank 0 only when torchrun/accelerate started several processes.

    Under torchrun the message also goes into TORCHELASTIC_ERROR_FILE, so torchrun's own failure summary shows it
    instead of a link (torchrun still prints its ChildFailedError report for a non-zero exit: that is its own)."""
    message = f"error: {exc}"
    rank_0 = os.environ.get("RANK", "0") in ("", "0")
    if rank_0:
        print(message, file=sys.stderr, flush=True)
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        record = {"message": {"message": message, "extraInfo": {"py_callstack": message.splitlines()[0],
                                                                 "timestamp": str(int(time.time()))}}}
        try:
            Path(error_file).write_text(json.dumps(record), encoding="utf-8")
        except OSError:
            pass
    if not rank_0:  # torchrun stops the other ranks when one exits: let rank 0 print its line first
        time.sleep(REFUSAL_GRACE_S)


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
