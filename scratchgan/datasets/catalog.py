"""One entry point for every data source: ``load_dataset(spec, image_shape, classes)``.

``spec`` is one of

=====================  ================================================================
mnist                  the embedded MNIST test set (10,000 digits, works offline)
mnist-full             MNIST's 60,000 training digits, downloaded once, MD5-checked
fashion-mnist          Fashion-MNIST's 60,000 training images (Debian's package, or download)
cifar10                CIFAR-10's 50,000 training images (cache, or download)
PATH.tar.gz            a CIFAR-10 archive (binary or python distribution)
FOLDER                 IDX files (MNIST layout), extracted CIFAR-10 batches, or else any
                       folder of PNG/JPEG pictures, fitted to ``image_shape``
=====================  ================================================================

``classes`` keeps some classes only: names or indices, e.g. ``["frog"]`` or ``["7"]``;
``"cifar10:frog"`` is short for ``cifar10`` with ``classes=["frog"]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingFileError, ScratchganError
from ..wording import counted
from . import cifar10, fashion_mnist, mnist
from .image_folder import load_image_folder

NAMED = ("mnist", "mnist-full", "fashion-mnist", "cifar10")
MNIST_CLASSES = tuple(str(d) for d in range(10))


class DataError(ScratchganError, ValueError):
    """Data that does not fit the request (classes, image size)."""


@dataclass
class Dataset:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray | None  # uint8 (N,), None for a folder of pictures
    class_names: tuple | None
    description: str
    skipped: list  # (path, reason) of unreadable pictures


def parse_spec(spec: str):
    """("cifar10", ["frog"]) from "cifar10:frog"; a spec without a known name is left whole."""
    name, sep, rest = spec.partition(":")
    if sep and name in NAMED and rest:
        return name, [c for c in rest.split(",") if c]
    return spec, []


def _load_labelled(spec: str):
    """(images, labels, class names, description) of a named set or a path."""
    if spec in ("mnist", "embedded"):
        return (*mnist.load_mnist("embedded"), MNIST_CLASSES, "MNIST test set (embedded)")
    if spec in ("mnist-full", "full"):
        return (*mnist.load_mnist("full"), MNIST_CLASSES, "MNIST training set")
    if spec == "fashion-mnist":
        return (*fashion_mnist.load_fashion_mnist(), fashion_mnist.CLASSES, "Fashion-MNIST training set")
    if spec == "cifar10":
        return (*cifar10.load_cifar10(), cifar10.CLASSES, "CIFAR-10 training set")
    path = Path(spec)
    if not path.exists():
        raise MissingFileError(f"--data {spec}: no such file or folder, and not one of {', '.join(NAMED)}")
    if path.is_file():
        return (*cifar10.load_cifar10(spec), cifar10.CLASSES, f"CIFAR-10 archive {path}")
    if any(path.glob("*-images-idx3-ubyte*")):
        return (*mnist.load_folder(path), MNIST_CLASSES, f"IDX files in {path}")
    if any(p.name.startswith(("data_batch_", "test_batch")) for p in path.rglob("*_batch*")):
        return (*cifar10.load_cifar10(spec), cifar10.CLASSES, f"CIFAR-10 batches in {path}")
    return None


def select_classes(images, labels, class_names, wanted):
    """Keep the images whose label is one of ``wanted`` (names, any case, or indices)."""
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    keep = []
    for item in wanted:
        key = str(item).strip().lower()
        if key in lookup:
            keep.append(lookup[key])
        elif key.isdigit() and int(key) < len(class_names):
            keep.append(int(key))
        else:
            raise DataError(f"unknown class {item!r}: expected one of {', '.join(class_names)} "
                            f"or an index 0-{len(class_names) - 1}")
    mask = np.isin(labels, keep)
    return images[mask], labels[mask], [class_names[i] for i in keep]


def load_dataset(spec: str, image_shape, classes=(), spread=None) -> Dataset:
    """The images of ``spec`` as uint8 (N, H, W, C), checked against ``image_shape``.
    ``spread``: how a folder of pictures is decoded (see load_image_folder)."""
    name, from_spec = parse_spec(spec)
    classes = list(classes or ()) + from_spec
    labelled = _load_labelled(name)
    if labelled is None:  # a folder of pictures: fitted to the model, no labels
        if classes:
            raise DataError(f"--class {','.join(classes)}: a folder of pictures has no classes")
        images, skipped = load_image_folder(name, image_shape, spread)
        note = f", {counted(len(skipped), 'unreadable file')} skipped" if skipped else ""
        return Dataset(images, None, None, f"{counted(len(images), 'picture')} from {name}{note}", skipped)
    images, labels, class_names, description = labelled
    if images.ndim == 3:
        images = images[..., None]
    if classes:
        images, labels, kept = select_classes(images, labels, class_names, classes)
        description += f", class {', '.join(kept)}"
        if len(images) == 0:
            raise DataError(f"--class {','.join(classes)}: {description.split(',')[0]} holds no image of "
                            f"{'that class' if len(kept) == 1 else 'those classes'}, so there is nothing to train on")
    if tuple(images.shape[1:]) != tuple(image_shape):
        have, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, image_shape))
        raise DataError(f"{description} holds {have} images but the model expects {want}; "
                        f"choose data of that size, or a folder of pictures (those are resized)")
    return Dataset(images, labels, class_names, f"{counted(len(images), 'image')}: {description}", [])
