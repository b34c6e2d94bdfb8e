"""Max pooling and nearest upsampling kernels, NHWC, parallel over images x output rows.

Max pooling keeps the winning tap index (int8, first maximum on ties, first NaN over any
number) like the reference; padded cells never win. The backward scatters dy to the winners, one image
per task (windows of one image may overlap, images never do), so there are no races; where
the windows tile the image exactly (a 2x2 pool on an even size), it writes each cell once
instead, one output row per task.
Upsampling by (sh, sw): forward copies, backward sums each sh x sw block.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import pool
from .checks import KernelArgumentError, same_shape
from .threads import threads_for


@njit(parallel=True, cache=True)
def _maxpool_forward(x, ph, pw, sh, sw, top, left, y, argmax):
    """Tap by tap over a window, each tap a branch-free pass over the C contiguous channels
    (vectorised): the first tap inside the image initialises, later ones replace where
    they are larger, or NaN where the best so far is not."""
    n, h, w, c = x.shape
    _, ho, wo, _ = y.shape
    for r in prange(n * ho):
        b = r // ho
        p = r % ho
        for q in range(wo):
            best = y[b, p, q]
            tap_of = argmax[b, p, q]
            first = True
            for i in range(ph):
                hi = p * sh + i - top
                if hi < 0 or hi >= h:
                    continue
                for j in range(pw):
                    wj = q * sw + j - left
                    if wj < 0 or wj >= w:
                        continue
                    v = x[b, hi, wj]
                    tap = i * pw + j
                    if first:
                        best[:] = v
                        tap_of[:] = tap
                        first = False
                        continue
                    for ch in range(c):
                        better = v[ch] > best[ch] or (v[ch] != v[ch] and best[ch] == best[ch])
                        best[ch] = v[ch] if better else best[ch]
                        tap_of[ch] = tap if better else tap_of[ch]
            if first:  # no tap inside the image (not possible with valid/same padding)
                best[:] = -np.inf
                tap_of[:] = 0


@njit(parallel=True, cache=True)
def _maxpool_backward(dy, argmax, ph, pw, sh, sw, top, left, dx):
    """One image per task; each tap of each window adds dy where it won, branch-free over C."""
    n, h, w, c = dx.shape
    _, ho, wo, _ = dy.shape
    for b in prange(n):
        dx[b] = 0
        for p in range(ho):
            for q in range(wo):
                g = dy[b, p, q]
                won = argmax[b, p, q]
                for i in range(ph):
                    hi = p * sh + i - top
                    if hi < 0 or hi >= h:
                        continue
                    for j in range(pw):
                        wj = q * sw + j - left
                        if wj < 0 or wj >= w:
                            continue
                        tap = i * pw + j
                        out = dx[b, hi, wj]
                        for ch in range(c):
                            out[ch] += g[ch] if won[ch] == tap else 0


@njit(parallel=True, cache=True)
def _maxpool_backward_tiled(dy, argmax, ph, pw, dx):
    """The windows tile the image exactly (stride = pool, no padding, H = Ho*ph, W = Wo*pw):
    every dx cell belongs to one window, so each is written once, with no zeroing pass."""
    n, ho, wo, c = dy.shape
    for r in prange(n * ho):
        b = r // ho
        p = r % ho
        for i in range(ph):
            out_row = dx[b, p * ph + i]
            for q in range(wo):
                g = dy[b, p, q]
                won = argmax[b, p, q]
                for j in range(pw):
                    out = out_row[q * pw + j]
                    tap = i * pw + j
                    for ch in range(c):
                        out[ch] = g[ch] if won[ch] == tap else 0


@njit(parallel=True, cache=True)
def _upsample_forward(x, sh, sw, y):
    """Per input row: its first output row column by column, then sh - 1 copies of it."""
    n, h, w, c = x.shape
    for r in prange(n * h):
        b = r // h
        hh = r % h
        first = y[b, hh * sh]
        for ww in range(w):
            v = x[b, hh, ww]
            for j in range(sw):
                first[ww * sw + j, :] = v
        for i in range(1, sh):
            y[b, hh * sh + i, :, :] = first


@njit(parallel=True, cache=True)
def _upsample_backward(dy, sh, sw, dx):
    """Per output row: the sh x sw blocks added channel-vector by channel-vector, row i then column j."""
    n, h, w, c = dx.shape
    for r in prange(n * h):
        b = r // h
        hh = r % h
        out_row = dx[b, hh]
        out_row[:, :] = 0
        for i in range(sh):
            row = dy[b, hh * sh + i]
            for ww in range(w):
                out = out_row[ww]
                for j in range(sw):
                    v = row[ww * sw + j]
                    for ch in range(c):
                        out[ch] += v[ch]


def maxpool_forward(x, g):
    if x.ndim != 4 or x.shape[1:3] != (g.h, g.w):
        raise KernelArgumentError(f"maxpool_forward: x has shape {x.shape}, expected (N, {g.h}, {g.w}, C) for {g}")
    n, _, _, c = x.shape
    y = pool.empty((n, g.ho, g.wo, c), x.dtype)
    argmax = pool.empty((n, g.ho, g.wo, c), np.int8)
    threads_for(x.size)
    _maxpool_forward(np.ascontiguousarray(x), g.kh, g.kw, g.sh, g.sw, g.top, g.left, y, argmax)
    return y, argmax


def _tiles_exactly(g) -> bool:
    """Whether the pool's windows cover the image exactly once (the usual MaxPooling2D(2) on
    an even size)."""
    return ((g.sh, g.sw) == (g.kh, g.kw) and g.ho * g.kh == g.h and g.wo * g.kw == g.w
            and g.top == g.left == 0)


def maxpool_backward(dy, argmax, g):
    same_shape("maxpool_backward", (dy.shape[0], g.ho, g.wo, dy.shape[-1]), dy=dy, argmax=argmax)
    dx = pool.empty((dy.shape[0], g.h, g.w, dy.shape[3]), dy.dtype)
    threads_for(dx.size)
    if _tiles_exactly(g):
        _maxpool_backward_tiled(np.ascontiguousarray(dy), np.ascontiguousarray(argmax), g.kh, g.kw, dx)
        return dx
    _maxpool_backward(np.ascontiguousarray(dy), np.ascontiguousarray(argmax), g.kh, g.kw, g.sh, g.sw, g.top, g.left, dx)
    return dx


def upsample_nearest_forward(x, size):
    sh, sw = size
    n, h, w, c = x.shape
    y = pool.empty((n, h * sh, w * sw, c), x.dtype)
    threads_for(y.size)
    _upsample_forward(np.ascontiguousarray(x), sh, sw, y)
    return y


def upsample_nearest_backward(dy, size):
    sh, sw = size
    n, hs, ws, c = dy.shape
    if hs % sh or ws % sw:
        raise KernelArgumentError(f"upsample_nearest_backward: dy's {hs}x{ws} is not a multiple of {sh}x{sw}")
    dx = pool.empty((n, hs // sh, ws // sw, c), dy.dtype)
    threads_for(dy.size)
    _upsample_backward(np.ascontiguousarray(dy), sh, sw, dx)
    return dx


KERNELS = {
    "maxpool_forward": maxpool_forward,
    "maxpool_backward": maxpool_backward,
    "upsample_nearest_forward": upsample_nearest_forward,
    "upsample_nearest_backward": upsample_nearest_backward,
}
