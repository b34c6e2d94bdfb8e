"""Where arrays live: host memory (NumPy) or the GPU (CuPy), and moving between the two.

The NumPy reference ops are written against an *array module* ``xp`` instead of ``np``
where they allocate or call a function, so the same readable code runs on CuPy arrays
(CuPy mirrors NumPy's API)::

    xp = array_module(x)          # numpy, or cupy when x is a cupy.ndarray
    out = xp.zeros(x.shape, x.dtype)

Layers keep their weights in the active backend's module
(:func:`scratchgan.backend.backend_module`): NumPy for "numpy" and "numba", CuPy for "cupy".
This module knows nothing of backends; it only looks at arrays. Data crosses to the host only where a
person needs it (a picture, a log line, a checkpoint): :func:`to_host`.

CuPy is never imported here: a CuPy array is recognised by its type's module, so
importing scratchgan never needs it.
"""
from __future__ import annotations

import sys

import numpy as np


def is_device_array(a) -> bool:
    """True for a cupy.ndarray (without importing CuPy)."""
    return type(a).__module__.split(".")[0] == "cupy"


def array_module(*arrays):
    """cupy if any of ``arrays`` is a CuPy array, else numpy (None entries are ignored)."""
    for a in arrays:
        if a is not None and is_device_array(a):
            return sys.modules["cupy"]
    return np


def like(a, reference, dtype=None):
    """``a`` as an array living where ``reference`` lives (host or GPU)."""
    return array_module(reference).asarray(a, dtype=dtype)


def to_host(a):
    """``a`` as a NumPy array (copied off the GPU if it lives there)."""
    if is_device_array(a):
        return a.get()
    return np.asarray(a)


def synchronize() -> None:
    """Wait for the GPU to finish queued work (timings need it: launches return at once)."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.cuda.get_current_stream().synchronize()


def to_float(value) -> float:
    """A 0-d array or scalar from either module as a Python float (one sync on the GPU)."""
    return float(to_host(value))
