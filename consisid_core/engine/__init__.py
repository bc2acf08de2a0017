"""The ConsisID video engine: model loading, conditioning stages, denoising and decoding."""

from .engine import ConsisIDEngine
from .stages import GlobalConditioning, LatentVideo, LocalConditioning, TextConditioning

__all__ = ["ConsisIDEngine", "GlobalConditioning", "LatentVideo", "LocalConditioning", "TextConditioning"]
