"""Pixels of any stored depth as 8-bit RGB: the one conversion every image reader of dsic uses.

Pillow's ``convert("RGB")`` clips 16- and 32-bit integer pixels at 255 instead of scaling them, so a
16-bit grayscale PNG or TIFF (thermal, medical, industrial cameras) became an all-white image that
trained and predicted without a word. Here integer modes deeper than 8 bits are scaled by their
depth's full range, as ``torchvision.transforms.v2.functional.to_dtype(..., scale=True)`` does:
``I;16*`` by 1/257 (65535 -> 255). ``I`` (32-bit signed) is what Pillow opens some 16-bit files as,
so its values are taken as 16-bit too and clipped at 65535: a fixed mapping, not one stretched per
image, so that training and inference see the same pixels. Floating-point images (``F``) have no
range to scale by and are refused with :class:`UnsupportedPixels`, as is any mode Pillow cannot
convert to RGB.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class UnsupportedPixels(ValueError):
    """The image's pixel mode has no defined mapping to 8-bit RGB."""


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as an 8-bit RGB image (see the module doc); raises :class:`UnsupportedPixels`."""
    if im.mode in SIXTEEN_BIT:
        values = np.asarray(im, dtype=np.float64 if im.mode == "I" else np.uint16)
        eight = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(eight, mode="L").convert("RGB")
    problem = mode_problem(im.mode)
    if problem:
        raise UnsupportedPixels(problem)
    return im.convert("RGB")


@functools.cache
def mode_problem(mode: str) -> str | None:
    """Why pixels of ``mode`` cannot be read as RGB, or None (checked once per mode)."""
    if mode == "F":
        return ("pixel mode 'F' (32-bit floating point) has no fixed range to map to 8 bits; "
                "save the image as 8- or 16-bit")
    if mode in SIXTEEN_BIT:
        return None
    try:
        Image.new(mode, (1, 1)).convert("RGB")
    except (ValueError, OSError):
        return f"pixel mode {mode!r} does not convert to RGB"
    return None


def read_image(path: Path) -> torch.Tensor:
    """The image at ``path`` as a [3, H, W] float tensor in [0, 1], upright (EXIF orientation applied)."""
    try:
        with Image.open(path) as im:
            return pil_to_tensor(to_rgb(ImageOps.exif_transpose(im))).float() / 255
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
