"""Convolution kernels: im2col / col2im without a padded copy, and direct kernels for few filters.

Shapes and arguments as in scratchgan/ops/conv.py: x (N, H, W, C), kernel (kh, kw, C, F),
y (N, Ho, Wo, F), and ``g`` the layer's Window record (sizes, strides, paddings).
Padding is implicit: an input index outside [0, H) x [0, W) reads as zero, so no padded
copy of x is ever made.

Two strategies, chosen per call:

* **im2col + BLAS GEMM, in batch chunks.** ``im2col`` writes the patches of a chunk of
  images as rows of ``cols`` (rows = pixels, columns = kh*kw*C), NumPy's BLAS does the
  GEMM, ``col2im`` folds columns back onto the image as a *gather* (each input pixel sums
  the taps that read it), so the parallel loop has no write conflicts. Chunks keep
  ``cols`` at about CHUNK_BYTES (cache-sized, and memory stays bounded: a 7x7 conv
  on 256 images of 28x28x128 would otherwise need a 5 GB ``cols``).
* **Direct loops when F is small** (F <= DIRECT_MAX_FILTERS, e.g. the last layer of a
  generator, 128 channels to 1). There im2col copies kh*kw values per multiply-add and
  the GEMM is a matrix-vector product; the direct kernels read x in place instead.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .threads import threads_for

CHUNK_BYTES = 8 << 20
DIRECT_MAX_FILTERS = 4


@njit(inline="always")
def _window_index(pos, pad, tap, stride, out_len):
    """The output index whose window reads input ``pos`` at ``tap``, or -1 if none does."""
    t = pos + pad - tap
    if t < 0 or t % stride != 0 or t // stride >= out_len:
        return -1
    return t // stride


@njit(parallel=True, cache=True)
def im2col(x, n0, n1, kh, kw, sh, sw, top, left, ho, wo, cols):
    """cols[(b-n0)*ho*wo + p*wo + q, (i*kw + j)*C + c] = x[b, p*sh+i-top, q*sw+j-left, c] (0 outside)."""
    _, h, w, c = x.shape
    for r in prange((n1 - n0) * ho):
        b = n0 + r // ho
        p = r % ho
        for q in range(wo):
            row = r * wo + q
            for i in range(kh):
                hi = p * sh + i - top
                for j in range(kw):
                    wj = q * sw + j - left
                    base = (i * kw + j) * c
                    if 0 <= hi < h and 0 <= wj < w:
                        for ch in range(c):
                            cols[row, base + ch] = x[b, hi, wj, ch]
                    else:
                        for ch in range(c):
                            cols[row, base + ch] = 0


@njit(parallel=True, cache=True)
def col2im(cols, n0, n1, kh, kw, sh, sw, top, left, ho, wo, dx):
    """dx[b, h, w, c] = sum of the cols entries that im2col copied from (h, w, c) (a gather)."""
    _, h, w, c = dx.shape
    for r in prange((n1 - n0) * h):
        b = n0 + r // h
        hh = r % h
        for ww in range(w):
            for ch in range(c):
                dx[b, hh, ww, ch] = 0
            for i in range(kh):
                p = _window_index(hh, top, i, sh, ho)
                if p < 0:
                    continue
                for j in range(kw):
                    q = _window_index(ww, left, j, sw, wo)
                    if q < 0:
                        continue
                    row = ((b - n0) * ho + p) * wo + q
                    base = (i * kw + j) * c
                    for ch in range(c):
                        dx[b, hh, ww, ch] += cols[row, base + ch]


@njit(parallel=True, cache=True, fastmath=True)
def direct_forward(x, kt, sh, sw, top, left, y):
    """y[b, p, q, f] = sum_{i,j,c} x[b, p*sh+i-top, q*sw+j-left, c] * kt[i, j, f, c] (no bias).

    kt is the kernel with its last two axes swapped, so that the innermost loop is a
    dot product of two contiguous runs of C values (vectorised)."""
    n, h, w, c = x.shape
    kh, kw, f, _ = kt.shape
    _, ho, wo, _ = y.shape
    for r in prange(n * ho):
        b = r // ho
        p = r % ho
        for q in range(wo):
            for o in range(f):
                acc = x[0, 0, 0, 0] * 0
                for i in range(kh):
                    hi = p * sh + i - top
                    if hi < 0 or hi >= h:
                        continue
                    for j in range(kw):
                        wj = q * sw + j - left
                        if wj < 0 or wj >= w:
                            continue
                        for ch in range(c):
                            acc += x[b, hi, wj, ch] * kt[i, j, o, ch]
                y[b, p, q, o] = acc


@njit(parallel=True, cache=True, fastmath=True)
def direct_backward_data(dy, kt, sh, sw, top, left, dx):
    """dx[b, h, w, c] = sum over the taps (i, j) that read (h, w) of sum_f dy[b, p, q, f] * kt[i, j, f, c].

    kt is the kernel with its last two axes swapped: each tap adds dy * (a contiguous run
    of C kernel values) to the C contiguous values of dx[b, h, w]."""
    n, h, w, c = dx.shape
    kh, kw, f, _ = kt.shape
    _, ho, wo, _ = dy.shape
    for r in prange(n * h):
        b = r // h
        hh = r % h
        for ww in range(w):
            for ch in range(c):
                dx[b, hh, ww, ch] = 0
            for i in range(kh):
                p = _window_index(hh, top, i, sh, ho)
                if p < 0:
                    continue
                for j in range(kw):
                    q = _window_index(ww, left, j, sw, wo)
                    if q < 0:
                        continue
                    for o in range(f):
                        g = dy[b, p, q, o]
                        for ch in range(c):
                            dx[b, hh, ww, ch] += g * kt[i, j, o, ch]


@njit(parallel=True, cache=True, fastmath=True)
def direct_backward_weights(dy, x, sh, sw, top, left, per_image):
    """per_image[b, i, j, f, c] = sum_{p,q} dy[b, p, q, f] * x[b, p*sh+i-top, q*sw+j-left, c].

    One image per task: its (kh, kw, F, C) partial (25 KB for 7x7x1x128) stays in L1
    while every output pixel adds dy * (a contiguous run of C inputs) to each tap's row;
    the partials are added up in float64 afterwards."""
    n, h, w, c = x.shape
    _, ho, wo, f = dy.shape
    _, kh, kw, _, _ = per_image.shape
    for b in prange(n):
        local = np.zeros((kh, kw, f, c), dtype=x.dtype)
        for p in range(ho):
            for q in range(wo):
                for o in range(f):
                    g = dy[b, p, q, o]
                    for i in range(kh):
                        hi = p * sh + i - top
                        if hi < 0 or hi >= h:
                            continue
                        for j in range(kw):
                            wj = q * sw + j - left
                            if wj < 0 or wj >= w:
                                continue
                            for ch in range(c):
                                local[i, j, o, ch] += g * x[b, hi, wj, ch]
        per_image[b] = local


def _chunk(n, row_bytes):
    return max(1, min(n, CHUNK_BYTES // max(row_bytes, 1)))


def conv2d_forward(x, kernel, bias, g):
    kh, kw, c, f = kernel.shape
    n = x.shape[0]
    x = np.ascontiguousarray(x)
    if f <= DIRECT_MAX_FILTERS:
        y = np.empty((n, g.ho, g.wo, f), dtype=x.dtype)
        threads_for(x.size * kh * kw)
        direct_forward(x, np.ascontiguousarray(kernel.transpose(0, 1, 3, 2)), g.sh, g.sw, g.top, g.left, y)
        if bias is not None:
            y += bias
        return y
    kr = kernel.reshape(kh * kw * c, f)
    pixels = g.ho * g.wo
    y = np.empty((n * pixels, f), dtype=x.dtype)
    chunk = _chunk(n, pixels * kh * kw * c * x.itemsize)
    cols = np.empty((chunk * pixels, kh * kw * c), dtype=x.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        rows = (n1 - n0) * pixels
        threads_for(cols.size)
        im2col(x, n0, n1, kh, kw, g.sh, g.sw, g.top, g.left, g.ho, g.wo, cols)
        np.matmul(cols[:rows], kr, out=y[n0 * pixels : n1 * pixels])
    if bias is not None:
        y += bias
    return y.reshape(n, g.ho, g.wo, f)


def conv2d_backward_data(dy, kernel, g):
    kh, kw, c, f = kernel.shape
    n = dy.shape[0]
    dy = np.ascontiguousarray(dy)
    dx = np.empty((n, g.h, g.w, c), dtype=dy.dtype)
    if f <= DIRECT_MAX_FILTERS:
        threads_for(dx.size * kh * kw)
        direct_backward_data(dy, np.ascontiguousarray(kernel.transpose(0, 1, 3, 2)), g.sh, g.sw, g.top, g.left, dx)
        return dx
    krt = kernel.reshape(kh * kw * c, f).T
    pixels = g.ho * g.wo
    dy2 = dy.reshape(n * pixels, f)
    chunk = _chunk(n, pixels * kh * kw * c * dy.itemsize)
    dcols = np.empty((chunk * pixels, kh * kw * c), dtype=dy.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        rows = (n1 - n0) * pixels
        np.matmul(dy2[n0 * pixels : n1 * pixels], krt, out=dcols[:rows])
        threads_for(dcols.size)
        col2im(dcols, n0, n1, kh, kw, g.sh, g.sw, g.top, g.left, g.ho, g.wo, dx)
    return dx


def conv2d_backward_weights(dy, x, g):
    kh, kw = g.kh, g.kw
    n, c, f = x.shape[0], x.shape[3], dy.shape[3]
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    if f <= DIRECT_MAX_FILTERS:
        per_image = np.empty((n, kh, kw, f, c), dtype=np.float64)
        threads_for(x.size * kh * kw)
        direct_backward_weights(dy, x, g.sh, g.sw, g.top, g.left, per_image)
        return per_image.sum(axis=0).transpose(0, 1, 3, 2).astype(x.dtype)
    pixels = g.ho * g.wo
    dy2 = dy.reshape(n * pixels, f)
    dk = np.zeros((kh * kw * c, f), dtype=x.dtype)
    chunk = _chunk(n, pixels * kh * kw * c * x.itemsize)
    cols = np.empty((chunk * pixels, kh * kw * c), dtype=x.dtype)
    part = np.empty_like(dk)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        rows = (n1 - n0) * pixels
        threads_for(cols.size)
        im2col(x, n0, n1, kh, kw, g.sh, g.sw, g.top, g.left, g.ho, g.wo, cols)
        np.matmul(cols[:rows].T, dy2[n0 * pixels : n1 * pixels], out=part)
        dk += part
    return dk.reshape(kh, kw, c, f)


KERNELS = {
    "conv2d_forward": conv2d_forward,
    "conv2d_backward_data": conv2d_backward_data,
    "conv2d_backward_weights": conv2d_backward_weights,
}
