"""Per-channel sums over rows, the reduction behind batch norm and the bias gradient.

a is viewed as (m, C) rows of C contiguous channels. Summing down a column one element at
a time in float32 loses digits over 10^5 rows, and NumPy's axis-0 sum of a wide array
runs at 6-9 GB/s (measured, one core); here every row block adds RUN rows at a time into
float32 partial sums that stay in cache, vectorised over the channels, and adds those
into float64.

    bias_backward   db[f] = sum over rows of dy[r, f]          (..., F) -> (F,)
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .threads import threads_for

BLOCKS = 16  # row blocks at most, one parallel task each
RUN = 32  # rows summed in float32 before they are added into float64
NARROW = 16  # fewer channels than this: NumPy's sum is faster
SHORT = 2048  # fewer rows than this: NumPy's sum (row after row, few enough to keep its digits) is faster


def row_blocks(rows: int) -> int:
    """Row blocks for channel_sums: up to BLOCKS, but none shorter than RUN rows (each
    block zeroes and flushes partial sums as long as a row)."""
    return max(1, min(BLOCKS, rows // RUN))


@njit(parallel=True, cache=True)
def channel_sums(a, shift_a, b, shift_b, blocks):
    """Per channel, in float64: (sum of u, sum of u * v) with u = a - shift_a, v = b - shift_b.

    One pass over the rows; no float32 sum is longer than RUN terms. Against float64 adds
    per element it ran 2.1x faster on 256x28x28x128 (one core: 8.5 against 18 ms)."""
    m, c = a.shape
    s1 = np.zeros((blocks, c))
    s2 = np.zeros((blocks, c))
    for t in prange(blocks):
        lo, hi = t * m // blocks, (t + 1) * m // blocks
        p1 = np.zeros(c, a.dtype)
        p2 = np.zeros(c, a.dtype)
        for start in range(lo, hi, RUN):
            p1[:] = 0
            p2[:] = 0
            for r in range(start, min(hi, start + RUN)):
                for ch in range(c):  # both loads before the stores, from a[r, ch] and not from
                    u = a[r, ch] - shift_a[ch]  # views of row r: 1.7x faster on 256x28x28x128
                    v = b[r, ch] - shift_b[ch]
                    p1[ch] += u
                    p2[ch] += u * v
            for ch in range(c):
                s1[t, ch] += p1[ch]
                s2[t, ch] += p2[ch]
    return s1.sum(axis=0), s2.sum(axis=0)


def bias_backward(dy):
    c = dy.shape[-1]
    rows = np.ascontiguousarray(dy).reshape(-1, c)
    if c < NARROW or rows.shape[0] < SHORT:  # measured: (128, 784) 7.7 against 23 us
        return rows.sum(axis=0)
    zero = np.zeros(c, dy.dtype)
    threads_for(dy.size)
    total, _ = channel_sums(rows, zero, rows, zero, row_blocks(rows.shape[0]))
    return total.astype(dy.dtype)


KERNELS = {"bias_backward": bias_backward}
