"""One warning category for every 'this will work, but not as well as you think' message."""

from __future__ import annotations

import warnings


class ConsisIDWarning(UserWarning):
    """A setting was adjusted or will lower quality; the message says which and why."""


def warn(message: str) -> None:
    """Issue a ConsisIDWarning: printed on the console, catchable by callers (nodes, tests)."""
    warnings.warn(message, ConsisIDWarning, stacklevel=3)
