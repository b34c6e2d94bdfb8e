"""Dropout kernels: the mask is drawn by the layer's NumPy generator (the same stream as
the reference, so both backends drop the same elements); one fused pass applies it
(zero comes in as the array's dtype: a literal 0 would make Numba compute in float64).

    keep = u >= rate  (u ~ U[0, 1) float32),  y = x * keep * scale,  dx = dy * keep * scale
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import pool
from .threads import threads_for


@njit(parallel=True, cache=True)
def _apply_forward(x, u, rate, scale, zero, y, keep):
    for i in prange(x.size):
        k = u[i] >= rate
        keep[i] = k
        y[i] = x[i] * scale if k else x[i] * zero  # x * 0, not 0: NaN stays NaN


@njit(parallel=True, cache=True)
def _apply_backward(dy, keep, scale, zero, dx):
    for i in prange(dy.size):
        dx[i] = dy[i] * scale if keep[i] else dy[i] * zero


def dropout_forward(x, rate, rng):
    u = rng.random(dtype=np.float32, out=pool.empty(x.shape, np.float32))
    scale = x.dtype.type(1.0 / (1.0 - rate))
    y = pool.empty(x.shape, x.dtype)
    keep = pool.empty(x.shape, np.uint8)
    threads_for(x.size)
    _apply_forward(np.ascontiguousarray(x).reshape(-1), u.reshape(-1), np.float32(rate), scale,
                   x.dtype.type(0), y.reshape(-1), keep.reshape(-1))
    return y, keep, scale


def dropout_backward(dy, keep, scale):
    dx = pool.empty(dy.shape, dy.dtype)
    threads_for(dy.size)
    _apply_backward(np.ascontiguousarray(dy).reshape(-1), np.ascontiguousarray(keep).reshape(-1),
                    dy.dtype.type(scale), dy.dtype.type(0), dx.reshape(-1))
    return dx


KERNELS = {"dropout_forward": dropout_forward, "dropout_backward": dropout_backward}
