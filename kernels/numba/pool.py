"""Large output arrays recycled across calls, so a training step stops paying for fresh memory.

A training iteration allocates the same large arrays every time: activations and their
masks, gradients, im2col workspaces. A fresh array of many megabytes comes straight
from the operating system, and touching each of its pages for the first time costs
about as much as writing it (filling a fresh 51 MB array took 13.7 ms, a reused one
7.2 ms): memory-bound kernels ran at half speed.

``empty(shape, dtype)`` returns an array of that shape and dtype laid over a byte buffer
that **nothing else references** (the pool's own reference is the only one, as
``sys.getrefcount`` sees it; every view of a buffer holds a reference to it), or else
over a new buffer, which the pool keeps for later calls. A buffer that a layer's cache, a
caller's variable or a view of it still holds is never handed out, so a recycled array
can never overwrite live data.

Buffers are kept by size, not by shape: a request takes the smallest unused buffer that
holds it, if that buffer is at most WASTE times the request. An im2col workspace, a
gradient and an activation of another layer can then share memory at different moments of
an iteration. Keeping one array per shape instead held memory that no call was using at
the iteration's peak: the numba bench workers' peak memory went from 765 to 579 MB on
dcgan, 953 to 702 MB on dcgan_upsample, 459 to 399 on dcgan_bn and 622 to 480 on
cifar_frog (numba bench workers alone, 4-10 iterations each, the same speed within the
host's noise). Variants measured the same way and not kept: any buffer that fits (WASTE
unbounded) gave about the same; the exact size only (WASTE 1) gave 640, 415 and 552 MB on
dcgan, dcgan_bn and cifar_frog.

The pool holds at most ``LIMIT_BYTES`` (``SCRATCHGAN_POOL_MB``, default 2048; 0 turns it
off); arrays under ``MIN_BYTES`` come from NumPy's allocator as usual, whose own free
lists already serve them well. ``clear()`` lets go of everything the pool holds.
"""
from __future__ import annotations

import bisect
import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20
LIMIT_BYTES = int(os.environ.get("SCRATCHGAN_POOL_MB", "2048")) << 20

_buffers: list = []  # the raw byte buffers the pool keeps, smallest first
_held = [0]  # bytes the pool keeps
_lock = threading.Lock()
#: a buffer serves requests of at least 1/WASTE of its size (a much larger one stays free
#: for the large arrays that need it)
WASTE = 2


def _references(arrays, i) -> int:
    return sys.getrefcount(arrays[i])


#: the count _references gives for an array only the pool's list holds (measured, not
#: assumed: the interpreter's own temporary references differ between versions)
_UNUSED = _references([np.empty(1)], 0)


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, over a recycled buffer when the pool has an
    unused one that fits (the smallest, up to WASTE times the bytes asked for)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:  # the common case on small models: keep it cheap
        return np.empty(shape, dtype)
    shape = tuple(int(s) for s in shape)
    with _lock:
        start = bisect.bisect_left(_buffers, nbytes, key=len)
        for i in range(start, len(_buffers)):
            if len(_buffers[i]) > WASTE * nbytes:
                break
            if _references(_buffers, i) == _UNUSED:
                return _buffers[i][:nbytes].view(dtype).reshape(shape)
        fresh = np.empty(nbytes, np.uint8)
        if _held[0] + nbytes <= LIMIT_BYTES:
            bisect.insort(_buffers, fresh, key=len)
            _held[0] += nbytes
        return fresh.view(dtype).reshape(shape)


def held_bytes() -> int:
    """Bytes of the buffers the pool keeps (in use or not)."""
    return _held[0]


def clear() -> None:
    """Let go of every array the pool keeps (those still in use live on with their users)."""
    with _lock:
        _buffers.clear()
        _held[0] = 0
