"""Error types raised by consisid_core; each message says what was wrong and what to do."""

from __future__ import annotations


class ConsisIDError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelFilesError(ConsisIDError, FileNotFoundError):
    """A model file or folder is missing or unreadable."""


class UnsupportedInputError(ConsisIDError, ValueError):
    """A generation setting the loaded checkpoint cannot honour (size, frame count, prompt type...)."""


class InputFileError(ConsisIDError, ValueError):
    """A file given on the command line or in a jobs file cannot be used (missing, not an image, not writable)."""
