"""One warning category for every 'this will work, but not as well as you think' message."""

from __future__ import annotations

import logging
import warnings

logger = logging.getLogger("consisid")


class ConsisIDWarning(UserWarning):
    """A setting was adjusted or will lower quality; the message says which and why."""


def warn(message: str) -> None:
    """Log and raise a ConsisIDWarning so both consoles and callers (nodes, tests) see it."""
    logger.warning(message)
    warnings.warn(message, ConsisIDWarning, stacklevel=3)
