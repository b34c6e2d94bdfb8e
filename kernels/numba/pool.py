"""Large output arrays recycled across calls, so a training step stops paying for fresh memory.

A training iteration allocates the same large arrays every time: activations and their
masks, gradients, im2col workspaces. A fresh array of many megabytes comes straight
from the operating system, and touching each of its pages for the first time costs
about as much as writing it (filling a fresh 51 MB array took 13.7 ms, a reused one
7.2 ms): memory-bound kernels ran at half speed.

``empty(shape, dtype)`` returns an array of that shape and dtype that **nothing else
references** (the pool's own reference is the only one, as ``sys.getrefcount`` sees
it), or else a new one, which the pool keeps for later calls. An array that a layer's
cache, a caller's variable or a view of it still holds is never handed out, so a
recycled array can never overwrite live data. The pool holds at most ``LIMIT_BYTES``
(``SCRATCHGAN_POOL_MB``, default 2048; 0 turns it off); arrays under ``MIN_BYTES`` come
from NumPy's allocator as usual, whose own free lists already serve them well.
``clear()`` lets go of everything the pool holds.
"""
from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20
LIMIT_BYTES = int(os.environ.get("SCRATCHGAN_POOL_MB", "2048")) << 20

_arrays: dict[tuple, list] = {}  # (shape, dtype) -> arrays the pool keeps
_held = [0]  # bytes the pool keeps
_lock = threading.Lock()


def _references(arrays, i) -> int:
    return sys.getrefcount(arrays[i])


#: the count _references gives for an array only the pool's list holds (measured, not
#: assumed: the interpreter's own temporary references differ between versions)
_UNUSED = _references([np.empty(1)], 0)


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, recycled when the pool has an unused one."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:  # the common case on small models: keep it cheap
        return np.empty(shape, dtype)
    shape = tuple(int(s) for s in shape)
    key = (shape, dtype.str)
    with _lock:
        arrays = _arrays.setdefault(key, [])
        for i in range(len(arrays)):
            if _references(arrays, i) == _UNUSED:
                return arrays[i]
        fresh = np.empty(shape, dtype)
        if _held[0] + nbytes <= LIMIT_BYTES:
            arrays.append(fresh)
            _held[0] += nbytes
        return fresh


def held_bytes() -> int:
    """Bytes of the arrays the pool keeps (in use or not)."""
    return _held[0]


def clear() -> None:
    """Let go of every array the pool keeps (those still in use live on with their users)."""
    with _lock:
        _arrays.clear()
        _held[0] = 0
