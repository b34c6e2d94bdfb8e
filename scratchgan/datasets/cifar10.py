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

import bz2
import gzip
import lzma
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .. import budget
from ..errors import MissingFileError, ScratchganError, one_line
from ..safe_io import open_checked, read_bytes
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


class CIFARFormatError(ScratchganError, ValueError):
    """A file that is not a CIFAR-10 batch."""


def decode_binary(raw: bytes, name: str):
    """Images (N, 32, 32, 3) uint8 and labels (N,) from one binary batch."""
    if len(raw) == 0 or len(raw) % RECORD:
        raise CIFARFormatError(
            f"{name}: {len(raw)} bytes is not a whole number of CIFAR-10 records "
            f"({RECORD} bytes each: 1 label + 32x32x3 pixels)")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].copy()
    if len(labels) and labels.max() > 9:
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


#: the most members an archive may list, and the most bytes its members may hold in all
#: (CIFAR-10's archives: 8 members, 185 MB); an archive beyond either is refused as it is read
MAX_MEMBERS = 1000
MAX_ARCHIVE_BYTES = 8 * MAX_BATCH_BYTES
#: the memory a decoded image takes per byte of its file's data (uint8, then float32 for training)
MEMORY_FACTOR = 5
_COMPRESSED = {b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), b"BZ": bz2.BZ2File,
               b"\xfd7zXZ\x00": lzma.LZMAFile}


class _Bounded:
    """A read-only stream that refuses to give more than ``limit`` bytes in all: a
    decompressed archive cannot inflate beyond what a CIFAR-10 archive holds."""

    def __init__(self, stream, limit: int, name: str):
        self.stream, self.left, self.name = stream, limit, name

    def read(self, n: int = -1) -> bytes:
        n = self.left + 1 if n is None or n < 0 else min(n, self.left + 1)
        data = self.stream.read(n)
        self.left -= len(data)
        if self.left < 0:
            raise CIFARFormatError(f"{self.name}: decompresses to more than {MAX_ARCHIVE_BYTES:,} bytes, more than "
                                   f"a CIFAR-10 archive holds")
        return data


def read_archive(path, split: str = "train"):
    """The ``split`` batches of a CIFAR-10 archive (.tar, .tar.gz, .tar.bz2 or .tar.xz, either
    distribution), read as a stream: at most MAX_MEMBERS members and MAX_ARCHIVE_BYTES
    decompressed; a member nobody wants is passed over (an uncompressed tar is not even
    read there; a compressed one cannot be skipped without decompressing)."""
    name = one_line(path)
    parts = []
    with open_checked(path, "cifar-archive", typed=True, what="a CIFAR-10 archive") as f:
        magic = f.read(6)
        f.seek(0)
        opener = next((o for m, o in _COMPRESSED.items() if magic.startswith(m)), None)
        try:
            if opener is None:
                tar = tarfile.open(fileobj=f, mode="r:")  # seekable: unwanted members are skipped, not read
            else:
                tar = tarfile.open(fileobj=_Bounded(opener(f), MAX_ARCHIVE_BYTES, name), mode="r|")
            with tar:
                total, wanted = 0, 0
                for count, m in enumerate(tar):
                    total += m.size
                    if count >= MAX_MEMBERS or total > MAX_ARCHIVE_BYTES:
                        raise CIFARFormatError(f"{name}: more than {MAX_MEMBERS:,} members or {MAX_ARCHIVE_BYTES:,} "
                                               f"bytes in all; a CIFAR-10 archive holds 8 members, 185 MB")
                    if not (m.isfile() and _wanted(os.path.basename(m.name), split)):
                        continue
                    where = f"{name}:{one_line(m.name)}"
                    _check_size(m.size, where)
                    wanted += m.size
                    budget.require(MEMORY_FACTOR * wanted, f"the CIFAR-10 batches of {name}")
                    parts.append((m.name, _decode(tar.extractfile(m).read(MAX_BATCH_BYTES + 1), where)))
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as err:
            if isinstance(err, ScratchganError):
                raise
            raise CIFARFormatError(f"{name}: not a readable tar archive ({one_line(err, 120)})") from None
    return _join([p for _, p in sorted(parts, key=lambda item: item[0])], path, split)


def read_folder(folder, split: str = "train"):
    """The ``split`` batches under an extracted CIFAR-10 folder (searched recursively; links
    inside it are not followed)."""
    files = sorted(p for p in Path(folder).rglob("*") if _wanted(p.name, split) and not p.is_symlink())
    budget.require(MEMORY_FACTOR * len(files) * 10_000 * RECORD, f"the {len(files)} CIFAR-10 batches in {one_line(folder)}")
    parts = []
    for p in files:
        if p.is_dir():
            continue
        raw = read_bytes(p, "cifar-batch", what="a CIFAR-10 batch")
        _check_size(len(raw), one_line(p))
        parts.append(_decode(raw, one_line(p)))
    return _join(parts, folder, split)


def _check_size(size: int, name: str) -> None:
    if size > MAX_BATCH_BYTES:
        raise CIFARFormatError(f"{name}: {size:,} bytes is more than a CIFAR-10 batch holds "
                               f"(10,000 images: at most {MAX_BATCH_BYTES:,} bytes)")


def _join(parts, where, split):
    if parts and sum(len(p[0]) for p in parts) == 0:
        raise CIFARFormatError(f"{one_line(where)}: its CIFAR-10 {split} batches hold no images")
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
        raise MissingFileError(f"{path}: no such CIFAR-10 archive or folder")
    return read_archive(path, split)
