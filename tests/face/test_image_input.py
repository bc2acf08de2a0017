"""Every kind of photo a user can hand over becomes the same RGB uint8 array (unit level, no networks)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from consisid_core.face import InvalidImageError
from consisid_core.face.resize import resize_long_edge
from consisid_core.image_input import load_rgb


@pytest.fixture(scope="module")
def rgb(photos):
    return photos["astronaut"]


def test_uint8_rgb_passes_through_unchanged(rgb):
    """An HxWx3 uint8 array (what the reference takes) is used as is."""
    out = load_rgb(rgb)
    assert out.dtype == np.uint8 and out.shape == rgb.shape and np.array_equal(out, rgb)


@pytest.mark.parametrize("shape", ["HxW", "HxWx1"])
def test_grayscale_becomes_three_equal_channels(rgb, shape):
    """Grayscale HxW and HxWx1 photos are replicated to RGB, not rejected."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    arr = gray if shape == "HxW" else gray[:, :, None]
    out = load_rgb(arr)
    assert out.shape == (*gray.shape, 3)
    assert np.array_equal(out[:, :, 0], gray) and np.array_equal(out[:, :, 1], gray) and np.array_equal(out[:, :, 2], gray)


def test_rgba_is_composited_on_white(rgb):
    """Transparent pixels become white, opaque ones keep their colour, half-transparent ones blend."""
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:100, :, 3] = 0
    rgba[100:200, :, 3] = 128
    out = load_rgb(rgba)
    assert np.all(out[:100] == 255)
    assert np.array_equal(out[200:], rgb[200:])
    alpha = 128 / 255
    expected = np.rint((rgb[100:200] / 255 * alpha + (1 - alpha)) * 255)
    assert np.abs(out[100:200].astype(int) - expected.astype(int)).max() <= 1
    # the same through PIL
    assert np.array_equal(load_rgb(Image.fromarray(rgba, "RGBA")), out)


def test_sixteen_bit_image_is_scaled_not_clipped(rgb, tmp_path):
    """A 16-bit photo (array, or a 16-bit PNG file) gives the same 8-bit picture, not a white one."""
    sixteen = rgb.astype(np.uint16) * 257
    assert np.array_equal(load_rgb(sixteen), rgb)
    path = tmp_path / "gray16.png"
    Image.fromarray(sixteen[:, :, 0]).save(path)
    assert Image.open(path).mode.startswith("I")  # really stored with 16 bits
    out = load_rgb(path)
    assert out.shape == rgb.shape and np.array_equal(out[:, :, 0], rgb[:, :, 0]) and np.array_equal(out[:, :, 2], rgb[:, :, 0])


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_images_in_unit_or_byte_range(rgb, scale):
    """Float photos in [0,1] (ComfyUI) or [0,255] map back to the same uint8 values (rounded, not truncated)."""
    as_float = rgb.astype(np.float32) / 255.0 * scale
    assert np.array_equal(load_rgb(as_float), rgb)


def test_comfyui_tensor_and_batch_of_one(rgb):
    """ComfyUI IMAGE tensors [H,W,3] and [1,H,W,3] in [0,1] give the original pixels."""
    t = torch.from_numpy(rgb).float() / 255.0
    assert np.array_equal(load_rgb(t), rgb)
    assert np.array_equal(load_rgb(t[None]), rgb)
    assert np.array_equal(load_rgb(t.permute(2, 0, 1)), rgb)  # channels-first also accepted
    assert np.array_equal(load_rgb(rgb[None]), rgb)  # numpy batch of one


def test_exif_rotated_jpeg_is_upright(rgb, tmp_path):
    """A JPEG whose EXIF says 'rotate 90 degrees' is loaded rotated, as the reference's load_image does."""
    portrait = rgb[:, :300]  # 512 tall, 300 wide
    stored = np.ascontiguousarray(np.rot90(portrait, k=1))  # camera stored it sideways: 300 tall, 512 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    out = load_rgb(path)
    assert out.shape == portrait.shape
    assert np.abs(out.astype(int) - portrait.astype(int)).mean() < 4  # JPEG noise only
    assert np.array_equal(load_rgb(Image.open(path)), out)


def test_large_photo_is_reduced_like_the_reference(rgb):
    """Long edge > 1024 shrinks to 1024 with Lanczos and int() truncation; smaller photos are never enlarged."""
    big = cv2.resize(rgb, (1500, 1001), interpolation=cv2.INTER_CUBIC)
    out = resize_long_edge(big)
    k = 1024 / 1500
    assert out.shape == (int(1001 * k), int(1500 * k), 3) == (683, 1024, 3)
    assert np.array_equal(out, cv2.resize(big, (1024, 683), interpolation=cv2.INTER_LANCZOS4))
    assert resize_long_edge(rgb) is rgb


@pytest.mark.parametrize("bad", [np.zeros((0, 10, 3), np.uint8), np.zeros((4, 4, 5), np.uint8), "no/such/file.png", 42])
def test_unreadable_inputs_raise_a_clear_error(bad):
    """Wrong shapes, missing files and unsupported types raise InvalidImageError (a ValueError), not a crash."""
    with pytest.raises(InvalidImageError) as err:
        load_rgb(bad)
    assert isinstance(err.value, ValueError)
