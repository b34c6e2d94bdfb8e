"""Any folder of your own pictures (PNG or JPEG, searched recursively) as training data.

Each picture is turned upright (EXIF orientation), laid on white if it has transparency,
converted to the model's channels (grey "L" or "RGB"), centre-cropped to the model's
aspect ratio and resized with a Lanczos filter, so faces, sketches or logos of any size
become (N, H, W, C) uint8. Files Pillow cannot read are skipped and counted.

What is decoded is bounded: each file is read by the validated reader (a regular file,
not a link, at most 64 MiB); only PNG and JPEG decoders are used, whatever a file's
name claims (an EPS file named .png would otherwise start Ghostscript); a picture is
refused before decoding if it declares more than ``MAX_PIXELS`` pixels, after JPEG's
reduced decoding (``draft``: the decoder itself scales by 1/2, 1/4 or 1/8) has brought
it as close to the model's size as it can, or if it is a JPEG of more than ``MAX_SCANS``
scans (a progressive JPEG is decoded once per scan: thousands of them take minutes).
The folder's pictures must fit the memory budget once decoded. 16-bit greys are scaled by their range
(0-65535 to 0-255), not clipped.
"""
from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import budget
from ..errors import ScratchganError, one_line
from ..safe_io import read_bytes
from ..wording import counted

SUFFIXES = (".png", ".jpg", ".jpeg")
#: the only decoders Pillow may use here
FORMATS = ("PNG", "JPEG")
#: the most pixels one picture may decode to (64 MB as RGBA): ample for pictures that are
#: resized to a few dozen pixels a side, and far below what a crafted file can declare
MAX_PIXELS = 4096 * 4096
#: the most scans a JPEG may have (a progressive JPEG from a camera or an encoder has about 10)
MAX_SCANS = 100


class ImageFolderError(ScratchganError, ValueError):
    """A folder that yields no usable images."""


def find_images(folder) -> list:
    """Every PNG/JPEG file under ``folder``, in a stable (sorted) order."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.suffix.lower() in SUFFIXES and not p.is_symlink() and not p.is_dir())


def open_bounded(path, height: int, width: int):
    """The picture at ``path``, read by the validated reader, opened with the PNG or JPEG
    decoder only and checked to decode to at most MAX_PIXELS (JPEG decoded reduced where
    the model's size allows) in at most MAX_SCANS scans."""
    data = read_bytes(path, "picture", what="a PNG or JPEG picture")
    try:
        with warnings.catch_warnings():  # a picture over Pillow's own bomb limit is refused just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise UnidentifiedImageError("not a PNG or JPEG file (only those are decoded), whatever its name says") from None
    if image.format == "JPEG":
        # each scan starts with an SOS marker, FF DA; entropy-coded data never holds FF DA
        scans = data.count(b"\xff\xda")
        if scans > MAX_SCANS:
            image.close()
            raise ValueError(f"a JPEG of {scans:,} scans, more than the {MAX_SCANS} decoded here")
        image.draft(image.mode, (width, height))  # the decoder scales down by up to 8, keeping >= this size
    if image.width * image.height > MAX_PIXELS:
        size = f"{image.width}x{image.height}"
        image.close()
        raise ValueError(f"{size} pixels is more than the {MAX_PIXELS:,} a picture may decode to here")
    return image


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) greys scaled from 0-65535 to 0-255 as "L"; other modes as they are."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return image
    values = np.asarray(image, dtype=np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def fit_image(image: Image.Image, height: int, width: int, channels: int) -> np.ndarray:
    """One picture -> uint8 (height, width, channels): upright, on white, centre-cropped, resized."""
    image = _eight_bit(ImageOps.exif_transpose(image))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def decode_images(paths, height: int, width: int, channels: int):
    """(uint8 (n, height, width, channels) of the pictures that could be read, list of
    (path, reason) of those skipped)."""
    images, skipped = [], []
    for path in paths:
        try:
            with open_bounded(path, height, width) as image:
                images.append(fit_image(image, height, width, channels))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, EOFError,
                SyntaxError, struct.error) as err:  # Pillow's ways of saying "a broken file" (a bad PNG chunk: SyntaxError)
            skipped.append((path, one_line(err, 200)))
    block = np.stack(images) if images else np.empty((0, height, width, channels), np.uint8)
    return block, skipped


def _in_this_process(work, items):
    return work(items)


def load_image_folder(folder, image_shape, spread=None):
    """(images uint8 (N, H, W, C), skipped) for ``image_shape`` (H, W, C), C 1 or 3;
    ``skipped`` lists (path, reason) of the files that could not be read.

    ``spread(work, paths)`` runs the decoding ``work`` over the sorted file list: by
    default in this process. Data-parallel training passes ``World.spread``, which has each
    rank decode a share and gathers the shares in order, so every rank ends with the
    array one process would make."""
    folder = Path(folder)
    height, width, channels = image_shape
    if channels not in (1, 3):
        raise ImageFolderError(f"image folders give 1 (grey) or 3 (RGB) channels, the model wants {channels}")
    paths = find_images(folder)
    if not paths:
        raise ImageFolderError(f"{one_line(folder)}: no PNG or JPEG images found (searched recursively for "
                               f"{', '.join(SUFFIXES)})")
    budget.require(5 * len(paths) * height * width * channels,
                   f"the {len(paths):,} pictures of {one_line(folder)} at {height}x{width}x{channels}")
    images, skipped = (spread or _in_this_process)(lambda share: decode_images(share, height, width, channels), paths)
    if len(images) == 0:
        what = "its one image file could not" if len(paths) == 1 else f"none of the {counted(len(paths), 'image file')} could"
        raise ImageFolderError(f"{one_line(folder)}: {what} be read "
                               f"(first: {one_line(skipped[0][0])}: {skipped[0][1]})")
    return images, skipped
