"""Saving arrays without ever leaving a half-written file behind."""
from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np


def atomic_save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically: a temporary file in the same folder,
    flushed to disk, then renamed over ``path``. A crash leaves the old file intact."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(path) -> dict:
    """All arrays of an .npz file, with a clear error for a missing or corrupt file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz archive ({err})") from None
