"""CIFAR-10: 60,000 32x32 colour images in ten classes (Krizhevsky, 2009).

Read from either of its two distributions, as the archive or extracted:

- binary (preferred, downloaded by default): ``cifar-10-batches-bin/data_batch_{1..5}.bin``
  and ``test_batch.bin``; each record is 1 label byte then 3,072 pixel bytes, the
  1,024 red, then green, then blue values of a 32x32 image in row order;
- python: ``cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch``, pickled dicts
  ``{b"data": uint8 (10000, 3072), b"labels": [int], ...}``, read with
  :mod:`~scratchgan.datasets.safe_pickle`, never with plain ``pickle.load``.

    images, labels = load_cifar10()                          # (50000, 32, 32, 3) uint8, (50000,)
    images, labels = load_cifar10("cifar-10-python.tar.gz")  # a local archive
    images, labels = load_cifar10("path/cifar-10-batches-bin", split="test")
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from .download import cache_dir, fetch, mirror_list
from .safe_pickle import restricted_loads

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: archive name -> MD5, as published
ARCHIVES = {
    "cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530",
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
}
MIRRORS = ["https://www.cs.toronto.edu/~kriz"]
RECORD = 1 + 32 * 32 * 3
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
#: the largest batch file read: 10,000 records (30.7 MB) and a pickle's overhead; a file or
#: archive member declaring more is refused before it is read
MAX_BATCH_BYTES = 40 << 20


class CIFARFormatError(ValueError):
    """A file that is not a CIFAR-10 batch."""


def decode_binary(raw: bytes, name: str):
    """Images (N, 32, 32, 3) uint8 and labels (N,) from one binary batch."""
    if len(raw) == 0 or len(raw) % RECORD:
        raise CIFARFormatError(
            f"{name}: {len(raw)} bytes is not a whole number of CIFAR-10 records "
            f"({RECORD} bytes each: 1 label + 32x32x3 pixels)")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise CIFARFormatError(f"{name}: label {labels.max()} found, CIFAR-10 labels are 0-9")
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def decode_pickle(raw: bytes, name: str):
    """Images (N, 32, 32, 3) uint8 and labels (N,) from one python-pickle batch."""
    try:
        batch = restricted_loads(raw)
    except Exception as err:  # refused globals, and truncated or garbled streams of many kinds
        raise CIFARFormatError(f"{name}: not a readable CIFAR-10 pickle ({err})") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CIFARFormatError(f"{name}: expected b'data' as uint8 (N, 3072), got {got}")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(data),) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise CIFARFormatError(f"{name}: expected {len(data)} labels in 0-9 under b'labels'")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels.astype(np.uint8)


def _decode(raw: bytes, name: str):
    return decode_binary(raw, name) if name.endswith(".bin") else decode_pickle(raw, name)


def _wanted(filename: str, split: str) -> bool:
    stem = filename[:-4] if filename.endswith(".bin") else filename
    return stem in BATCHES[split]


def read_archive(path, split: str = "train"):
    """The ``split`` batches of a CIFAR-10 .tar.gz (either distribution), read in place."""
    try:
        with tarfile.open(path) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and _wanted(os.path.basename(m.name), split)),
                             key=lambda m: m.name)
            parts = []
            for m in members:
                _check_size(m.size, f"{path}:{m.name}")
                parts.append(_decode(tar.extractfile(m).read(MAX_BATCH_BYTES + 1), f"{path}:{m.name}"))
    except tarfile.TarError as err:
        raise CIFARFormatError(f"{path}: not a readable tar archive ({err})") from None
    return _join(parts, path, split)


def read_folder(folder, split: str = "train"):
    """The ``split`` batches under an extracted CIFAR-10 folder (searched recursively)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and _wanted(p.name, split))
    parts = []
    for p in files:  # is_file(): regular files only (a FIFO or device named like a batch is passed over)
        _check_size(p.stat().st_size, str(p))
        parts.append(_decode(p.read_bytes(), str(p)))
    return _join(parts, folder, split)


def _check_size(size: int, name: str) -> None:
    if size > MAX_BATCH_BYTES:
        raise CIFARFormatError(f"{name}: {size:,} bytes is more than a CIFAR-10 batch holds "
                               f"(10,000 images: at most {MAX_BATCH_BYTES:,} bytes)")


def _join(parts, where, split):
    if not parts:
        names = ", ".join(BATCHES[split])
        raise CIFARFormatError(f"{where}: no CIFAR-10 {split} batches found (expected {names}, "
                               f"with .bin for the binary distribution)")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(source: str = "cifar10", split: str = "train"):
    """(images uint8 (N, 32, 32, 3), labels uint8 (N,)) from "cifar10" (the cache, downloading
    the binary archive once), a .tar.gz archive, or an extracted folder."""
    if source == "cifar10":
        folder = cache_dir() / "cifar10"
        for name in ARCHIVES:
            for candidate in (folder / name, folder / name.replace(".tar.gz", "").replace("-10-", "-10-batches-")):
                if candidate.exists():
                    return load_cifar10(str(candidate), split)
        source = fetch("cifar-10-binary.tar.gz", ARCHIVES["cifar-10-binary.tar.gz"],
                       mirror_list("SCRATCHGAN_CIFAR10_MIRROR", MIRRORS), folder)
    path = Path(source)
    if path.is_dir():
        return read_folder(path, split)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such CIFAR-10 archive or folder")
    if not path.is_file():  # a FIFO or a device: opening it could block or never end
        raise CIFARFormatError(f"{path}: not a regular file or folder; expected a CIFAR-10 .tar.gz or its folder")
    return read_archive(path, split)
