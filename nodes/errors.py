"""Node errors: one exception type whose message starts with the node's name and says what to do."""

from __future__ import annotations

import contextlib
from typing import Iterator

from consisid_core.errors import ConsisIDError


class ConsisIDNodeError(ConsisIDError):
    """Raised by a ConsisID node; ComfyUI shows the message in the node's error panel."""


def label(display_name: str, node_id: str) -> str:
    """How messages name a node: its display name and its id, e.g. "Face Crop&Align (ConsisIDFaceCropAlign)"."""
    return f"{display_name} ({node_id})"


def fail(node: str, message: str) -> ConsisIDNodeError:
    return ConsisIDNodeError(f"{node}: {message}")


@contextlib.contextmanager
def reported_as(node: str) -> Iterator[None]:
    """Turn the pack's own errors (and a few well-understood others) into a node error naming `node`.

    Interrupts and out-of-memory errors pass through unchanged: ComfyUI handles those itself.
    """
    try:
        yield
    except ConsisIDNodeError:
        raise
    except ConsisIDError as exc:
        raise fail(node, str(exc)) from exc
    except FileNotFoundError as exc:
        raise fail(node, f"{exc}") from exc
