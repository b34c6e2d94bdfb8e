"""MNIST: the embedded test set, the full set on request, or IDX files in a folder.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0).
The 10,000-image test set ships inside this package, so training works offline.

    images, labels = load_mnist()                   # embedded: (10000, 28, 28) uint8, (10000,)
    images, labels = load_mnist("full")             # 60,000 training images, downloaded once
    images, labels = load_mnist("path/to/folder")   # train-* (or t10k-*) IDX files, .gz or not
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MissingFileError
from .download import cache_dir, fetch, mirror_list
from .idx import IDXFormatError, read_idx

EMBEDDED_DIR = Path(__file__).parent / "mnist"

#: file name -> MD5 of the gzipped file, as published
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: file name -> size in bytes of the published file: a download stops beyond it
SIZES = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}

#: public mirrors of the original files, tried in order ($SCRATCHGAN_MNIST_MIRROR first)
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist",
    "https://storage.googleapis.com/cvdf-datasets/mnist",
]


def mirrors():
    return mirror_list("SCRATCHGAN_MNIST_MIRROR", MIRRORS)


def read_pair(images_path, labels_path):
    """Images (N, 28, 28) uint8 and labels (N,) uint8 from two IDX files, checked to agree."""
    # the images become float32 for training: 5 bytes of memory per byte of the file's data
    images = read_idx(images_path, expect_ndim=3, expect_tail=(28, 28), memory_factor=5)
    labels = read_idx(labels_path, expect_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise IDXFormatError(f"{images_path}: MNIST files hold unsigned bytes, got {images.dtype}/{labels.dtype}")
    if len(images) != len(labels):
        raise IDXFormatError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(images) == 0:
        raise IDXFormatError(f"{images_path} holds no images (its header declares 0); there is nothing to train on")
    return images, labels


def _find(folder: Path, stem: str):
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def load_folder(folder, split: str = "train"):
    """The ``split`` ("train" or "t10k") IDX pair from ``folder``, gzipped or not."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: no such folder")
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}[split]
    images = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise MissingFileError(
            f"{folder}: expected {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte "
            f"(each may end in .gz), found {sorted(p.name for p in folder.iterdir()) or 'nothing'}"
        )
    return read_pair(images, labels)


def load_mnist(source: str = "embedded", split: str = "train"):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) from "embedded", "full" or a folder."""
    if source in ("embedded", "mnist"):
        return read_pair(EMBEDDED_DIR / "t10k-images-idx3-ubyte.gz", EMBEDDED_DIR / "t10k-labels-idx1-ubyte.gz")
    if source in ("full", "mnist-full"):
        return download_pair(split, FILES, mirrors(), cache_dir() / "mnist")
    return load_folder(source, split)


def download_pair(split: str, files: dict, mirror_urls, folder, sizes: dict | None = None):
    """The ``split`` IDX pair in MNIST's file names, fetched into ``folder`` and checked
    against ``files`` (name -> MD5), each download stopped beyond ``sizes`` (name -> bytes);
    MNIST and Fashion-MNIST share this layout."""
    prefix = "train" if split == "train" else "t10k"
    sizes = SIZES if sizes is None else sizes
    paths = [fetch(f"{prefix}-{kind}.gz", files[f"{prefix}-{kind}.gz"], mirror_urls, folder,
                   size=sizes.get(f"{prefix}-{kind}.gz"))
             for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
    return read_pair(*paths)
