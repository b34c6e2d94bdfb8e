"""Writing files without ever leaving a half-written one behind."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path``; on success it is flushed to disk and renamed
    over ``path``, on any error it is deleted. Readers see the old file or the new one,
    never a partial one.

        with atomic_write("ckpt.npz") as tmp:
            np.savez(tmp, ...)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


#: the most an .npz may declare, per member and in all (dcgan_upsample's checkpoint: 165 MB)
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30


def load_npz(path) -> dict:
    """All arrays of an .npz file, with a clear error for a missing, corrupt or oversized file:
    the sizes its members declare are checked before any is read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path}: not a regular file (a directory, FIFO or device); expected an .npz archive")
    try:
        with zipfile.ZipFile(path) as archive:
            sizes = {info.filename: info.file_size for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz archive ({err})") from None
    big = {name: size for name, size in sizes.items() if size > MAX_MEMBER_BYTES}
    if big or sum(sizes.values()) > MAX_TOTAL_BYTES:
        what = next(iter(big.items())) if big else ("all members", sum(sizes.values()))
        raise ValueError(f"{path}: {what[0]} declares {what[1]:,} bytes, more than an .npz is read with here "
                         f"({MAX_MEMBER_BYTES:,} per member, {MAX_TOTAL_BYTES:,} in all)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz archive ({err})") from None
