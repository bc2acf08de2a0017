"""Turn any photo the user can hand us into an RGB uint8 array, then cap it at 1024 px like the reference."""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from .errors import InvalidImageError

MAX_LONG_EDGE = 1024  # reference `resize_numpy_image_long(image, 1024)`


def load_rgb(image: Any) -> np.ndarray:
    """Return an HxWx3 uint8 RGB array (EXIF orientation applied, alpha composited on white)."""
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
        return _array_to_rgb(_tensor_to_numpy(image))
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise InvalidImageError(
        f"Unsupported face photo type {type(image).__name__}; pass a file path, a PIL image, an HxWxC numpy array "
        "or an [H,W,C] float tensor in [0,1] (ComfyUI IMAGE)."
    )


def resize_long_edge(rgb: np.ndarray, max_edge: int = MAX_LONG_EDGE) -> np.ndarray:
    """Shrink so the long edge is `max_edge` (Lanczos, sides truncated with int()); never enlarge."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_edge:
        return rgb
    k = max_edge / max(h, w)
    return cv2.resize(rgb, (int(w * k), int(h * k)), interpolation=cv2.INTER_LANCZOS4)


def _pil_to_rgb(pil: Image.Image) -> np.ndarray:
    pil = ImageOps.exif_transpose(pil) or pil
    mode = pil.mode
    if mode == "P":
        pil = pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
        pil = pil.convert("RGB")
    elif mode == "PA":
        pil = pil.convert("RGBA")
    return _array_to_rgb(np.asarray(pil))


def _is_torch_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def _tensor_to_numpy(tensor: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise InvalidImageError(f"Got a batch of {tensor.shape[0]} images where one photo was expected.")
        tensor = tensor[0]
    if tensor.ndim == 3 and tensor.shape[0] in (1, 3, 4) and tensor.shape[-1] not in (1, 3, 4):
        tensor = tensor.permute(1, 2, 0)  # channels-first [C,H,W]
    if tensor.is_floating_point():
        tensor = tensor.float()
    return tensor.numpy()


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 4 and arr.shape[0] == 1:  # a batch of one
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InvalidImageError(
            f"A face photo must be HxW or HxWxC with C in 1..4; got shape {tuple(arr.shape)}."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"The face photo is empty (shape {tuple(arr.shape)}).")
    channels = arr.shape[2]
    if arr.dtype == np.uint8 and channels == 3:
        return np.ascontiguousarray(arr)
    unit = _to_unit_float(arr)  # float32 in [0, 1]
    if channels in (2, 4):
        alpha = unit[:, :, -1:]
        unit = unit[:, :, :-1] * alpha + (1.0 - alpha)  # composite on white
    if unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    return np.ascontiguousarray(np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8))


def _to_unit_float(arr: np.ndarray) -> np.ndarray:
    """Scale any pixel dtype to float32 in [0, 1]: uint8/255, 16-bit/65535, floats as [0,1] (or [0,255] if above 1)."""
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
        if unit.max(initial=0.0) > 1.0 + 1e-3:
            unit = unit / 255.0
        return np.clip(unit, 0.0, 1.0)
    raise InvalidImageError(f"Unsupported pixel type {arr.dtype} for a face photo.")
