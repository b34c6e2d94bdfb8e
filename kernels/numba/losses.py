"""Binary cross-entropy kernels: one pass for the loss (float64 sum) and the clipped p,
one pass for the gradient. Formulas in scratchgan/ops/losses.py.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Keras's clip of probabilities; the reference's EPSILON (scratchgan/ops/losses.py), which a test compares
EPSILON = 1e-7


@njit(cache=True)
def _bce_forward(p, t, lo, hi, pc):
    total = 0.0
    for i in range(p.size):
        pc[i] = min(max(p[i], lo), hi)
        v = pc[i]  # rounded to p's dtype, as the reference's clip is
        total += t[i] * math.log(v) + (1 - t[i]) * math.log(1 - v)
    return -total / p.size


@njit(cache=True)
def _bce_backward(p, pc, t, lo, hi, dp):
    n = p.size
    for i in range(n):
        inside = lo < p[i] < hi
        dp[i] = (pc[i] - t[i]) / (pc[i] * (1 - pc[i])) / n if inside else 0


def bce_forward(p, t, eps=EPSILON):
    pc = np.empty(p.shape, dtype=p.dtype)
    loss = _bce_forward(np.ascontiguousarray(p).reshape(-1), np.ascontiguousarray(t, dtype=p.dtype).reshape(-1),
                        p.dtype.type(eps), p.dtype.type(1 - eps), pc.reshape(-1))
    return float(loss), pc


def bce_backward(p, pc, t, eps=EPSILON):
    dp = np.empty(p.shape, dtype=p.dtype)
    _bce_backward(np.ascontiguousarray(p).reshape(-1), pc.reshape(-1),
                  np.ascontiguousarray(t, dtype=p.dtype).reshape(-1), p.dtype.type(eps), p.dtype.type(1 - eps),
                  dp.reshape(-1))
    return dp


KERNELS = {"bce_forward": bce_forward, "bce_backward": bce_backward}
