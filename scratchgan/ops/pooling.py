"""Max pooling and nearest-neighbour upsampling, NHWC.

Max pooling, window (ph, pw), strides (sh, sw), padding valid/same; xpad is x with the
"same" padding added as -inf, so padded cells never win::

    y[n, p, q, c] = max_{i<ph, j<pw} xpad[n, p*sh + i, q*sw + j, c]
    dx: each dy goes to the one input that won its window (the first one on ties;
        a window holding a NaN outputs its first NaN, so a NaN propagates);
        windows that overlap add their gradients.

The window is taken tap by tap with strided slices, like im2col; the winner is kept
as a small integer tap index (int8), which is all the backward needs.

Nearest upsampling by (sh, sw)::

    y[n, p, q, c] = x[n, p // sh, q // sw, c]
    dx[n, h, w, c] = sum of dy over the sh x sw block that copied x[n, h, w, c]

Derivation: docs/derivations.md, "MaxPooling2D and UpSampling2D".
"""
from __future__ import annotations

import numpy as np

from ..xp import array_module
from .registry import op


def _taps(ph, pw):
    return [(i, j) for i in range(ph) for j in range(pw)]


@op
def maxpool_forward(x, g):
    """Returns (y, argmax): y (N,Ho,Wo,C), argmax (N,Ho,Wo,C) int8 tap index i*pw + j.  g: the pool's Window."""
    xp = array_module(x)
    if g.top or g.bottom or g.left or g.right:
        x = xp.pad(x, ((0, 0), (g.top, g.bottom), (g.left, g.right), (0, 0)), constant_values=-np.inf)
    y = None
    argmax = xp.zeros((x.shape[0], g.ho, g.wo, x.shape[3]), dtype=np.int8)
    for t, (i, j) in enumerate(_taps(g.kh, g.kw)):
        window = x[:, i : i + g.sh * (g.ho - 1) + 1 : g.sh, j : j + g.sw * (g.wo - 1) + 1 : g.sw, :]
        if y is None:
            y = window.copy()
            continue
        better = window > y  # strict: the first maximum keeps the gradient
        better |= xp.isnan(window) & ~xp.isnan(y)  # a NaN beats any number: NaN propagates
        xp.copyto(y, window, where=better)
        argmax[better] = t
    return y, argmax


@op
def maxpool_backward(dy, argmax, g):
    """dx (N,H,W,C): dy scattered to the winning tap of each window."""
    n, c = dy.shape[0], dy.shape[-1]
    xp = array_module(dy)
    dxpad = xp.zeros((n, *g.padded_shape, c), dtype=dy.dtype)
    for t, (i, j) in enumerate(_taps(g.kh, g.kw)):
        dxpad[:, i : i + g.sh * (g.ho - 1) + 1 : g.sh, j : j + g.sw * (g.wo - 1) + 1 : g.sw, :] += xp.where(
            argmax == t, dy, 0
        )
    return dxpad[:, g.top : g.top + g.h, g.left : g.left + g.w, :]


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
