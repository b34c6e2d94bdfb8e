"""How many threads a kernel launch gets: one for all but the largest work.

NumPy's BLAS and Numba keep two thread pools. After each GEMM, OpenBLAS's idle threads
spin for about 0.1 s, and a training step runs a GEMM every few hundred microseconds,
so in training they hold every core; a parallel Numba loop then waits for a core the
spinning threads give up late. Measured on 2 cores (examples/thread_threshold.py, a
128x784x128 GEMM between kernel calls, as in training), a parallel Adam update or
LeakyReLU was never faster than the serial one from 4,096 to 4,194,304 elements, and
slower below 65,536 (up to 2.3x for small ones); the same loops without the GEMM run
1.5-2x faster in parallel from 262,144 up. A whole mlp iteration did not measurably
change (numba against numpy, five interleaved pairs: median 1.22x with this threshold,
1.21x with the former 65,536); dcgan and dcgan_bn stayed within 3% with every kernel serial.

So a kernel runs on the calling thread below ``PARALLEL_MIN_WORK`` elements (2^22, where
parallel broke even here and a machine with more cores may gain), and on all of Numba's
threads above it.

Once a process runs GEMMs large enough to split (a convolutional model: gemm.py), every
GEMM holds BLAS to one thread and OpenBLAS's threads stop spinning; from then on
(``blas_quiet()``) kernels go parallel from ``QUIET_PARALLEL_MIN_WORK`` elements (2^16).
Measured on the same 2 cores, whole iterations of the numba bench workers with split
GEMMs, the threshold at 2^22 / 2^18 / 2^16: dcgan_bn 671-712 / 615 / 584-587 ms, dcgan
955-968 / 832-856 / 832-833, dcgan_upsample 563-572 / 554 / 513-539, cifar_frog
1,166-1,191 / 1,082-1,141 / 1,086-1,109 (two rounds each).
``SCRATCHGAN_PARALLEL_MIN_WORK`` sets another threshold for both cases (a number of
elements, or "never"); measure yours with ``python3 examples/thread_threshold.py``.
Serial and parallel runs of a kernel compute the same values (the loops are element-wise
or split the same way), so the threshold changes speed only.
"""
from __future__ import annotations

import os

import numba

#: the default: below this many elements of work a kernel runs on the calling thread only
DEFAULT_PARALLEL_MIN_WORK = 1 << 22
#: the environment variable that overrides it
VARIABLE = "SCRATCHGAN_PARALLEL_MIN_WORK"
NEVER = 1 << 62


def parallel_min_work(value: str | None, default: int = DEFAULT_PARALLEL_MIN_WORK) -> int:
    """The threshold ``value`` (the variable's text) asks for, ``default`` when it is unset;
    ValueError naming what is wrong."""
    if value is None or value.strip() == "":
        return default
    text = value.strip().lower()
    if text == "never":
        return NEVER
    if not text.isdigit() or int(text) > NEVER:
        raise ValueError(f"{VARIABLE}={value!r}: expected a number of elements (0 to 2^62) or 'never'")
    return int(text)


PARALLEL_MIN_WORK = parallel_min_work(os.environ.get(VARIABLE))
#: the threshold once BLAS's threads are quiet (the variable, when set, overrides it too)
QUIET_PARALLEL_MIN_WORK = parallel_min_work(os.environ.get(VARIABLE), default=1 << 16)

_all = numba.config.NUMBA_NUM_THREADS
_current = [None]
_quiet = [False]


def blas_quiet() -> None:
    """Say that BLAS's own threads no longer run (gemm.py holds every GEMM to one BLAS
    thread): kernels then go parallel from QUIET_PARALLEL_MIN_WORK elements."""
    _quiet[0] = True


def all_threads() -> int:
    """How many threads Numba's parallel loops may use (NUMBA_NUM_THREADS)."""
    return _all


def threads_for(work: int) -> None:
    """Set Numba's thread count for the next launch: all threads for ``work`` elements at or
    above PARALLEL_MIN_WORK, one below."""
    n = _all if work >= (QUIET_PARALLEL_MIN_WORK if _quiet[0] else PARALLEL_MIN_WORK) else 1
    if _current[0] != n:
        numba.set_num_threads(n)
        _current[0] = n
