"""Every GEMM of the Numba backend: BLAS on one thread per call, the work split across threads here.

NumPy's OpenBLAS parallelises each GEMM over its own thread pool, whose idle threads
then spin for about 0.1 s on every core; the Numba kernels that run between two GEMMs
(im2col, Winograd's transforms, batch norm, activations) find their cores taken and
run at one core's speed (performance.md, "One thread pool"). So, once a process has run
a GEMM of at least SWITCH_FLOPS (a convolutional model's), every GEMM here runs with
OpenBLAS held to one thread for the length of the call, and a call of at least
SPLIT_MIN_FLOPS is split into independent GEMMs on ``threads`` Python threads (BLAS
releases the GIL):

* a stack of matrices (Winograd's alpha^2 GEMMs, one per tile point) by its first axis;
* one tall matrix by the rows of its output, one wide matrix by its columns (so no thread
  reads the large operand whole: the few-filter path's (49, 128) @ (128, pixels)).

OpenBLAS's own threads then never get work and sleep, the cores are free for Numba's,
and threads.py lets kernels go parallel from a lower threshold (``blas_quiet``).
Measured on a 2-core Xeon with `scratchgan bench`, the commit before this mechanism and
the one that added it in turn (docs/performance.md, "One thread pool", gives the command),
ms per iteration: dcgan_bn 836 -> 684, dcgan_upsample 756 -> 626, dcgan 1,013 -> 979,
cifar_frog 1,486 -> 1,182.

Variants measured and not kept: splitting only Winograd's GEMMs made dcgan_upsample
12-18% slower than not splitting at all (im2col's GEMMs, left to OpenBLAS, spun and took
the cores from the split ones); and a model whose GEMMs all stay small (the mlp: 128 x 784
x 128), held to one BLAS thread, ran 5.7 instead of 4.4 ms per iteration, split on Python
threads 7.0 ms (waking a thread costs about as much as such a GEMM). So the mlp keeps
BLAS's own threads: a process switches at its first GEMM of SWITCH_FLOPS. The BLAS thread
count is restored after every call, so a NumPy GEMM of the caller's own gets BLAS's
threads as before.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from . import pool
from .threads import all_threads, blas_quiet

#: below this many multiply-adds (x2) a GEMM runs on the calling thread only
SPLIT_MIN_FLOPS = 4_000_000
#: the first GEMM of at least this many FLOPs switches the process to split GEMMs for good
SWITCH_FLOPS = 100_000_000

_lock = threading.Lock()
_state = {"blas": None, "pool": None, "depth": 0, "saved": [], "split": False}


def _blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process (found once)."""
    if _state["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController

            _state["blas"] = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # threadpoolctl missing or unable to read a library: BLAS stays as it is
            _state["blas"] = []
    return _state["blas"]


@contextmanager
def one_blas_thread():
    """BLAS held to one thread per call inside (nested uses are cheap; the count is restored)."""
    with _lock:
        if _state["depth"] == 0:
            libraries = _blas_libraries()
            _state["saved"] = [lib.num_threads for lib in libraries]
            for lib in libraries:
                lib.set_num_threads(1)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                for lib, count in zip(_blas_libraries(), _state["saved"]):
                    lib.set_num_threads(count)


def _forget_threads_in_a_forked_child() -> None:
    """A forked child has none of its parent's threads: a pool it inherited would take work
    that no thread ever runs. It starts its own on its first split GEMM."""
    _state["pool"] = None
    _state["depth"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_in_a_forked_child)


def _pool():
    if _state["pool"] is None:
        _state["pool"] = ThreadPoolExecutor(max_workers=max(1, all_threads() - 1),
                                            thread_name_prefix="scratchgan-gemm")
    return _state["pool"]


def _parts(length: int, count: int):
    """``count`` near-equal [start, stop) ranges covering range(length), none empty."""
    count = max(1, min(count, length))
    bounds = [length * i // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def matmul(a, b, out=None):
    """out[...] = a @ b as np.matmul computes it, for 2-D a, b or stacks (S, M, K) @ (S, K, N).

    ``out`` must have the result's shape; it may be a strided view (a column block, a
    transposed view), as np.matmul's ``out`` may. None: a new array (2-D a and b only)."""
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    flops = 2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.shape[0] if a.ndim == 3 else 1)
    threads = all_threads()
    if threads == 1:
        np.matmul(a, b, out=out)
        return out
    if not _state["split"]:
        if flops < SWITCH_FLOPS:
            np.matmul(a, b, out=out)  # BLAS's own threads, as NumPy runs it
            return out
        _state["split"] = True  # from now on every GEMM: BLAS's threads would spin again after one
        blas_quiet()
    with one_blas_thread():
        if flops < SPLIT_MIN_FLOPS:
            np.matmul(a, b, out=out)
            return out
        if a.ndim == 3 and b.ndim == 3:  # a stack: split by its matrices
            parts = [(a[i:j], b[i:j], out[i:j]) for i, j in _parts(a.shape[0], threads)]
        elif a.ndim == 2 and out.shape[0] >= out.shape[1]:  # one tall matrix: split by the output's rows
            parts = [(a[i:j], b, out[i:j]) for i, j in _parts(a.shape[0], threads)]
        elif a.ndim == 2:  # one wide matrix: by its columns (each thread then reads a, not b, again)
            parts = [(a, b[:, i:j], out[:, i:j]) for i, j in _parts(b.shape[1], threads)]
        else:
            np.matmul(a, b, out=out)
            return out
        helpers = [_pool().submit(_matmul_into, *part) for part in parts[1:]]
        try:
            np.matmul(*parts[0][:2], out=parts[0][2])
        finally:
            for helper in helpers:
                helper.result()  # waits, and raises a helper's error here
    return out


def product(a, b):
    """a @ b (2-D) in a new array: into an array from the pool through matmul, or NumPy's own
    ``@`` where both would leave it as it is (``_plain``), a microsecond or two less per call:
    as much as the mlp's smallest GEMMs take (the discriminator's one-unit head, (128, 128) @
    (128, 1), took 3.2-3.6 us through the pool and matmul, 1.9-2.1 us as ``@``;
    examples/ops_against_numpy.py)."""
    rows, inner, columns = a.shape[0], a.shape[1], b.shape[1]
    if _plain(rows, inner, columns, max(a.itemsize, b.itemsize)):
        return a @ b
    return matmul(a, b, pool.empty((rows, columns), np.result_type(a, b)))


def _plain(rows, inner, columns, itemsize) -> bool:
    """Whether matmul would run this GEMM as NumPy's matmul unchanged (the process does not
    split GEMMs yet, and this one is under SWITCH_FLOPS, so it cannot start the split) and
    the pool would not keep its output (under pool.MIN_BYTES)."""
    return (not _state["split"] and 2 * rows * inner * columns < SWITCH_FLOPS
            and rows * columns * itemsize < pool.MIN_BYTES)


def _matmul_into(a, b, out):
    np.matmul(a, b, out=out)  # BLAS's thread count is process-wide: the caller holds it at one
