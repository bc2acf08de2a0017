"""The one image normaliser: every image that enters (photos, canvas IMAGE tensors, video frames) -> RGB uint8.

One rule everywhere: alpha is composited on white, grey is replicated to RGB, integers are scaled by their bit
depth, floats are [0, 1] (a float image whose maximum is above FLOAT_255_ABOVE is read as 0..255). Lives at the
package's base so the engine, the face pipeline, the metrics and the nodes all import it downward.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from .errors import ConsisIDError

FLOAT_255_ABOVE = 2.0  # a [0, 1] image may overshoot a little (VAE decode); past 2 it is a 0..255 image


class InvalidImageError(ConsisIDError, ValueError):
    """The input cannot be read as an image (wrong type, shape, or empty)."""


def load_rgb(image: Any) -> np.ndarray:
    """Any one image (path, PIL, HxW[xC] array, [H,W,C] / [1,H,W,C] / [C,H,W] tensor) -> HxWx3 uint8 RGB."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as pil:
                pil.load()
                return _pil_to_rgb(pil)
        except (OSError, ValueError) as exc:
            raise InvalidImageError(f"Cannot read the face photo {str(image)!r}: {exc}. Use a PNG/JPEG/WebP file.") from exc
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if _is_torch_tensor(image):
        return _one_image(_tensor_to_numpy(image, channels_first_ok=True))
    if isinstance(image, np.ndarray):
        return _one_image(image)
    raise InvalidImageError(
        f"Unsupported face photo type {type(image).__name__}; pass a file path, a PIL image, an HxWxC numpy array "
        "or an [H,W,C] float tensor in [0,1] (ComfyUI IMAGE)."
    )


def batch_to_rgb(images: Any) -> np.ndarray:
    """[N,H,W,C] array or tensor (ComfyUI IMAGE batch, video frames; C in 1..4) -> [N,H,W,3] uint8, one range
    decision for the whole batch so a dark frame is read like its neighbours."""
    array = _tensor_to_numpy(images, channels_first_ok=False) if _is_torch_tensor(images) else np.asarray(images)
    if array.ndim != 4 or array.shape[-1] not in (1, 2, 3, 4):
        raise InvalidImageError(f"An image batch must be [N,H,W,C] with C in 1..4; got shape {tuple(array.shape)}.")
    return to_rgb_uint8(array)


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """[..., H, W, C] pixels (C in 1..4, any dtype) -> [..., H, W, 3] uint8 by the one rule (see module doc)."""
    channels = array.shape[-1]
    if array.dtype == np.uint8 and channels == 3:
        return np.ascontiguousarray(array)
    unit = to_unit_float(array)
    if channels in (2, 4):
        alpha = unit[..., -1:]
        unit = unit[..., :-1] * alpha + (1.0 - alpha)  # composite on white
    if unit.shape[-1] == 1:
        unit = np.repeat(unit, 3, axis=-1)
    return np.ascontiguousarray(np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8))


def to_unit_float(arr: np.ndarray) -> np.ndarray:
    """Any pixel dtype -> float32 in [0, 1]: uint8/255, 16-bit/65535, floats clipped ([0,255] floats / 255)."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if np.issubdtype(arr.dtype, np.integer):
        sixteen_bit = (arr.dtype.kind == "u" and arr.dtype.itemsize == 2) or arr.max(initial=0) > 255
        top = 65535.0 if sixteen_bit else 255.0
        return np.clip(arr.astype(np.float32) / top, 0.0, 1.0)
    if np.issubdtype(arr.dtype, np.floating):
        unit = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        if unit.max(initial=0.0) > FLOAT_255_ABOVE:
            unit = unit / 255.0
        return np.clip(unit, 0.0, 1.0)
    raise InvalidImageError(f"Unsupported pixel type {arr.dtype} for an image.")


def _one_image(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 4 and arr.shape[0] == 1:  # a batch of one
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InvalidImageError(f"A face photo must be HxW or HxWxC with C in 1..4; got shape {tuple(arr.shape)}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"The face photo is empty (shape {tuple(arr.shape)}).")
    return to_rgb_uint8(arr)


def _pil_to_rgb(pil: Image.Image) -> np.ndarray:
    pil = ImageOps.exif_transpose(pil) or pil
    mode = pil.mode
    if mode == "P":
        pil = pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
        pil = pil.convert("RGB")
    elif mode == "PA":
        pil = pil.convert("RGBA")
    return _one_image(np.asarray(pil))


def _is_torch_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def _tensor_to_numpy(tensor: Any, channels_first_ok: bool) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if channels_first_ok and tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise InvalidImageError(f"Got a batch of {tensor.shape[0]} images where one photo was expected.")
        tensor = tensor[0]
    if channels_first_ok and tensor.ndim == 3 and tensor.shape[0] in (1, 3, 4) and tensor.shape[-1] not in (1, 3, 4):
        tensor = tensor.permute(1, 2, 0)  # channels-first [C,H,W]
    if tensor.is_floating_point():
        tensor = tensor.float()
    return tensor.numpy()
