"""Fashion-MNIST (Xiao, Rasul and Vollgraf, Zalando, 2017): 70,000 28x28 grey images
of clothes in ten classes, in MNIST's IDX format and file names.

Read from Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist)
when it is installed, else downloaded once into the cache and checked by MD5.
"""
from __future__ import annotations

import os
from pathlib import Path

from .download import cache_dir, mirror_list
from .mnist import download_pair, load_folder

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

#: file name -> MD5 of the gzipped file, as published by Zalando (Debian's copies are
#: recompressed, so they are read as they are, not checked against these)
FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: file name -> size in bytes of Zalando's published file: a download stops beyond it
SIZES = {
    "train-images-idx3-ubyte.gz": 26_421_880,
    "train-labels-idx1-ubyte.gz": 29_515,
    "t10k-images-idx3-ubyte.gz": 4_422_102,
    "t10k-labels-idx1-ubyte.gz": 5_148,
}
MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"]


def system_dir() -> Path:
    """Where an installed copy is looked for ($SCRATCHGAN_FASHION_MNIST_DIR overrides)."""
    return Path(os.environ.get("SCRATCHGAN_FASHION_MNIST_DIR") or SYSTEM_DIR)


def load_fashion_mnist(split: str = "train"):
    """(images uint8 (N, 28, 28), labels uint8 (N,)): 60,000 for "train", 10,000 for "test"."""
    if system_dir().is_dir():
        return load_folder(system_dir(), split)
    return download_pair(split, FILES, mirror_list("SCRATCHGAN_FASHION_MNIST_MIRROR", MIRRORS),
                         cache_dir() / "fashion-mnist", sizes=SIZES)
