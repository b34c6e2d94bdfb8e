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
threads above it. ``SCRATCHGAN_PARALLEL_MIN_WORK`` sets another threshold (a number of
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


def parallel_min_work(value: str | None) -> int:
    """The threshold ``value`` (the variable's text) asks for; ValueError naming what is wrong."""
    if value is None or value.strip() == "":
        return DEFAULT_PARALLEL_MIN_WORK
    text = value.strip().lower()
    if text == "never":
        return NEVER
    if not text.isdigit() or int(text) > NEVER:
        raise ValueError(f"{VARIABLE}={value!r}: expected a number of elements (0 to 2^62) or 'never'")
    return int(text)


PARALLEL_MIN_WORK = parallel_min_work(os.environ.get(VARIABLE))

_all = numba.config.NUMBA_NUM_THREADS
_current = [None]


def threads_for(work: int) -> None:
    """Set Numba's thread count for the next launch: all threads for ``work`` elements at or
    above PARALLEL_MIN_WORK, one below."""
    n = _all if work >= PARALLEL_MIN_WORK else 1
    if _current[0] != n:
        numba.set_num_threads(n)
        _current[0] = n
