"""How many threads a kernel launch gets: all of them for big work, one for small.

Waking the worker threads of a parallel loop costs tens of microseconds and, on a
2-core machine, disturbs NumPy's BLAS threads; for small arrays that costs more than
the second core gains (the mlp iteration: 7.7 ms with every kernel parallel, 5.6 ms
with one thread). ``threads_for(work)`` sets Numba's thread count for the next launch.
"""
from __future__ import annotations

import numba

#: below this many elements of work a kernel runs on the calling thread only
PARALLEL_MIN_WORK = 1 << 16

_all = numba.config.NUMBA_NUM_THREADS
_current = [None]


def threads_for(work: int) -> None:
    n = _all if work >= PARALLEL_MIN_WORK else 1
    if _current[0] != n:
        numba.set_num_threads(n)
        _current[0] = n
