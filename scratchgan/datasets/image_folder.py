"""Any folder of your own pictures (PNG or JPEG, searched recursively) as training data.

Each picture is turned upright (EXIF orientation), laid on white if it has transparency,
converted to the model's channels (grey "L" or "RGB"), centre-cropped to the model's
aspect ratio and resized with a Lanczos filter, so faces, sketches or logos of any size
become (N, H, W, C) uint8. Files Pillow cannot read are skipped and counted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..wording import counted

SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageFolderError(ValueError):
    """A folder that yields no usable images."""


def find_images(folder) -> list:
    """Every PNG/JPEG file under ``folder``, in a stable (sorted) order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def fit_image(image: Image.Image, height: int, width: int, channels: int) -> np.ndarray:
    """One picture -> uint8 (height, width, channels): upright, on white, centre-cropped, resized."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def load_image_folder(folder, image_shape):
    """(images uint8 (N, H, W, C), skipped) for ``image_shape`` (H, W, C), C 1 or 3;
    ``skipped`` lists (path, reason) of the files that could not be read."""
    folder = Path(folder)
    height, width, channels = image_shape
    if channels not in (1, 3):
        raise ImageFolderError(f"image folders give 1 (grey) or 3 (RGB) channels, the model wants {channels}")
    paths = find_images(folder)
    if not paths:
        raise ImageFolderError(f"{folder}: no PNG or JPEG images found (searched recursively for "
                               f"{', '.join(SUFFIXES)})")
    images, skipped = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(fit_image(image, height, width, channels))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
            skipped.append((path, str(err)))
    if not images:
        what = "its one image file could not" if len(paths) == 1 else f"none of the {counted(len(paths), 'image file')} could"
        raise ImageFolderError(f"{folder}: {what} be read "
                               f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return np.stack(images), skipped
