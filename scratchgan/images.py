"""Sample grids as PNG files (Pillow), and images as arrays in [0, 1]."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .errors import UsageError
from .safe_io import atomic_write
from .xp import to_host


def to_unit_range(images, data_range):
    """Map generator outputs from ``data_range`` ((-1, 1) or (0, 1)) to [0, 1], clipped."""
    lo, hi = data_range
    return np.clip((to_host(images).astype(np.float32, copy=False) - lo) / (hi - lo), 0.0, 1.0)


def grid_shape(n: int, columns: int | None = None):
    """(rows, columns) of a near-square grid for n images."""
    cols = columns or math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def make_grid(images, columns: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile (N, H, W, C) images in [0, 1] into one uint8 picture (pad pixels of grey between)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UsageError(f"expected images of shape (N, H, W, 1 or 3), got {images.shape}")
    n, h, w, c = images.shape
    rows, cols = grid_shape(n, columns)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 0.5, dtype=np.float32)
    for k in range(n):
        r, q = divmod(k, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = images[k]
    pixels = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    return pixels[..., 0] if c == 1 else pixels


def save_png(pixels: np.ndarray, path) -> None:
    """Write a uint8 picture as PNG, atomically."""
    with atomic_write(path) as f:
        Image.fromarray(pixels).save(f, format="PNG")


def save_grid(images, path, columns=None, scale: int = 3) -> None:
    """Save (N, H, W, C) images in [0, 1] as one PNG grid."""
    save_png(make_grid(images, columns=columns, scale=scale), path)
