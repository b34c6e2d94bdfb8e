"""Max pooling and nearest-neighbour upsampling, NHWC.

Max pooling, window (ph, pw), strides (sh, sw), padding valid/same (padded cells never win)::

    y[n, p, q, c] = max_{i<ph, j<pw} x[n, p*sh + i, q*sw + j, c]
    dx: each dy goes to the one input that won its window (the first one on ties);
        windows that overlap add their gradients.

The window is taken tap by tap with strided slices, like im2col; the winner is kept
as a small integer tap index (int8), which is all the backward needs.

Nearest upsampling by (sh, sw)::

    y[n, p, q, c] = x[n, p // sh, q // sw, c]
    dx[n, h, w, c] = sum of dy over the sh x sw block that copied x[n, h, w, c]
"""
from __future__ import annotations

import numpy as np

from ..xp import array_module
from .geometry import window_geometry
from .registry import op


def _taps(ph, pw):
    return [(i, j) for i in range(ph) for j in range(pw)]


@op
def maxpool_forward(x, pool, strides, padding):
    """Returns (y, argmax): y (N,Ho,Wo,C), argmax (N,Ho,Wo,C) int8 tap index i*pw + j."""
    (ph, pw), (sh, sw) = pool, strides
    xp = array_module(x)
    ho, wo, pad_h, pad_w = window_geometry(x.shape, pool, strides, padding)
    if pad_h != (0, 0) or pad_w != (0, 0):
        x = xp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)
    y = None
    argmax = xp.zeros((x.shape[0], ho, wo, x.shape[3]), dtype=np.int8)
    for t, (i, j) in enumerate(_taps(ph, pw)):
        window = x[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
        if y is None:
            y = window.copy()
            continue
        better = window > y  # strict: the first maximum keeps the gradient
        xp.copyto(y, window, where=better)
        argmax[better] = t
    return y, argmax


@op
def maxpool_backward(dy, argmax, x_shape, pool, strides, padding):
    """dx (N,H,W,C): dy scattered to the winning tap of each window."""
    (ph, pw), (sh, sw) = pool, strides
    n, h, w, c = x_shape
    ho, wo, (top, bottom), (left, right) = window_geometry(x_shape, pool, strides, padding)
    xp = array_module(dy)
    dxpad = xp.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for t, (i, j) in enumerate(_taps(ph, pw)):
        dxpad[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :] += xp.where(
            argmax == t, dy, 0
        )
    return dxpad[:, top : top + h, left : left + w, :]


@op
def upsample_nearest_forward(x, size):
    """(N,H,W,C) -> (N,H*sh,W*sw,C), each pixel repeated into an sh x sw block."""
    sh, sw = size
    n, h, w, c = x.shape
    y = array_module(x).broadcast_to(x[:, :, None, :, None, :], (n, h, sh, w, sw, c))
    return y.reshape(n, h * sh, w * sw, c)


@op
def upsample_nearest_backward(dy, size):
    """(N,H*sh,W*sw,C) -> (N,H,W,C): the sum of each sh x sw block."""
    sh, sw = size
    n, hs, ws, c = dy.shape
    return dy.reshape(n, hs // sh, sh, ws // sw, sw, c).sum(axis=(2, 4))
