"""Convolution kernels: im2col / col2im without a padded copy, and a GEMM over the pixels for few filters.

Shapes and arguments as in scratchgan/ops/conv.py: x (N, H, W, C), kernel (kh, kw, C, F),
y (N, Ho, Wo, F), and ``g`` the layer's Window record (sizes, strides, paddings).
Padding is implicit: an input index outside [0, H) x [0, W) reads as zero, so no padded
copy of x is ever made.

Two strategies, chosen per call:

* **im2col + BLAS GEMM, in batch chunks.** ``im2col`` writes the patches of a chunk of
  images as rows of ``cols`` (rows = pixels, columns = kh*kw*C), NumPy's BLAS does the
  GEMM, ``col2im`` folds columns back onto the image as a *gather* (each input pixel sums
  the taps that read it), so the parallel loop has no write conflicts. Chunks keep
  ``cols`` at about CHUNK_BYTES, so memory stays bounded (a 7x7 conv on 256 images of
  28x28x128 would otherwise need a 5 GB ``cols``).
* **Few filters (F <= FEW_FILTERS, e.g. a generator's last layer, 128 channels to 1).**
  There im2col would copy kh*kw values per multiply-add into a GEMM only F columns wide.
  Instead the GEMM runs against the input's own pixels, kh*kw*F columns wide::

      forward:   zt = K' @ x_pix^T        K' = kernel as (kh*kw*F, C), x_pix = x as (N*H*W, C)
                 y[b,p,q,o] = sum_{i,j} zt[(i,j,o), b, p*sh+i-top, q*sw+j-left]   (sum_taps)
      backward:  gt[(i,j,o), b, h, w] = dy[b,p,q,o] where tap (i,j) of (p,q) reads (h,w)
                 (spread_taps, 0 elsewhere);  dx_pix = gt^T @ K',  dK' = gt @ x_pix

  The taps' sums walk contiguous rows of zt and gt (one shifted add per tap), and the
  three GEMMs are as large as the convolution's FLOPs.
* **Few channels (C <= FEW_CHANNELS, e.g. a discriminator's first layer on 1-channel
  digits).** A row of ``cols`` is then kh*kw runs of C values, too short to copy as
  vectors: im2col spent 12.6 of a 1->64 5x5 forward's 18.4 ms (256 images of 28x28).
  So the workspace is kept transposed, cols^T (kh*kw*C, pixels): each of its rows is one
  tap's shifted copy of an image row, written as a contiguous run (``im2col`` and
  ``col2im`` with ``transposed``), and the GEMMs read it transposed (BLAS takes either
  layout)::

      forward:   y = (cols^T)^T @ K       backward-weights:  dK = cols^T @ dy
      backward-data:  dcols^T = K @ dy^T, then col2im folds it back
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import gemm, pool
from .checks import channel_vectors
from .threads import threads_for

#: workspace per chunk of images. Each chunk's GEMM packs the whole kernel matrix and wakes
#: the GEMM threads again (gemm.py), so larger chunks pay that less often, until a chunk no
#: longer fits the last-level cache. `python3 examples/chunk_sizes.py` times the zoo's layers
#: at several sizes; on a 2-core Xeon (docs/performance.md, "Workspace chunks"), dcgan's 4x4
#: stride-2 layer on 256 images of 28x28 took 138.5 / 122.4 / 121.2 ms per forward with 8 /
#: 16 / 32 MB, and its 7x7 few-filter layer 30.5 / 26.4 / 24.5 / 23.8 ms per backward-data
#: with 2 / 4 / 8 / 16 MB of taps.
CHUNK_BYTES = 16 << 20
#: the few-filter path's per-tap workspace (same measurement)
TAPS_CHUNK_BYTES = 8 << 20
FEW_FILTERS = 4
FEW_CHANNELS = 4


@njit(inline="always")
def _window_index(pos, pad, tap, stride, out_len):
    """The output index whose window reads input ``pos`` at ``tap``, or -1 if none does."""
    t = pos + pad - tap
    if t < 0 or t % stride != 0 or t // stride >= out_len:
        return -1
    return t // stride


@njit(parallel=True, cache=True)
def im2col(x, n0, n1, kh, kw, sh, sw, top, left, ho, wo, transposed, cols):
    """cols[(b-n0)*ho*wo + p*wo + q, (i*kw + j)*C + c] = x[b, p*sh+i-top, q*sw+j-left, c] (0 outside),
    or with ``transposed``, the same values in cols[(i*kw + j)*C + c, (b-n0)*ho*wo + p*wo + q].

    Tap by tap over one output row, so the bounds are worked out once per tap, not per
    pixel. The plain layout writes each pixel's C channels as one run; the transposed one
    writes each channel's wo pixels as one run (the few-channel layout)."""
    _, h, w, c = x.shape
    for r in prange((n1 - n0) * ho):
        b = n0 + r // ho
        p = r % ho
        row0 = r * wo
        for i in range(kh):
            hi = p * sh + i - top
            for j in range(kw):
                base = (i * kw + j) * c
                q0, q1 = _inside(j, sw, left, w, wo)
                if hi < 0 or hi >= h:
                    q0, q1 = wo, wo
                if transposed:
                    for ch in range(c):
                        dst = cols[base + ch, row0 : row0 + wo]
                        dst[:q0] = 0
                        for q in range(q0, q1):
                            dst[q] = x[b, hi, q * sw + j - left, ch]
                        dst[max(q0, q1):] = 0
                    continue
                for q in range(wo):
                    if q < q0 or q >= q1:
                        for ch in range(c):
                            cols[row0 + q, base + ch] = 0
                    else:
                        src = x[b, hi, q * sw + j - left]
                        for ch in range(c):
                            cols[row0 + q, base + ch] = src[ch]


@njit(parallel=True, cache=True)
def col2im(cols, n0, n1, kh, kw, sh, sw, top, left, ho, wo, transposed, start, dx):
    """dx[b, h, w, c] = start[c] + the sum of the cols entries that im2col copied from (h, w, c)
    (cols in im2col's layout, plain or ``transposed``).

    One input row per task (so no two tasks write one value): for each tap (i, j) whose
    output row p reads this row, add the taps' columns of that output row's pixels q to
    dx[b, h, q*sw+j-left]; each value receives its taps in (i, j) order. ``start`` is zero,
    or a transposed convolution's bias, added here at no extra pass."""
    _, h, w, c = dx.shape
    for r in prange((n1 - n0) * h):
        b = n0 + r // h
        hh = r % h
        out = dx[b, hh]
        for q in range(w):
            out[q] = start
        for i in range(kh):
            p = _window_index(hh, top, i, sh, ho)
            if p < 0:
                continue
            row0 = ((b - n0) * ho + p) * wo
            for j in range(kw):
                base = (i * kw + j) * c
                q0, q1 = _inside(j, sw, left, w, wo)
                if transposed:
                    for ch in range(c):
                        src = cols[base + ch]
                        for q in range(q0, q1):
                            out[q * sw + j - left, ch] += src[row0 + q]
                    continue
                for q in range(q0, q1):
                    dst = out[q * sw + j - left]
                    for ch in range(c):
                        dst[ch] += cols[row0 + q, base + ch]


@njit(parallel=True, cache=True)
def sum_taps(zt, n0, n1, kh, kw, sh, sw, top, left, y):
    """y[b, p, q, o] = sum over the taps (i, j) that fall inside the image of
    zt[(i*kw + j)*F + o, b-n0, p*sh+i-top, q*sw+j-left]   (images n0..n1 of y).

    zt holds, for every input pixel, what each tap of each filter contributes from it;
    the sum walks contiguous runs of a row of zt (stride 1: a shifted add)."""
    _, ho, wo, f = y.shape
    _, _, h, w = zt.shape
    for r in prange((n1 - n0) * ho):
        b = r // ho
        p = r % ho
        out = y[n0 + b, p]
        out[:] = 0
        for i in range(kh):
            hi = p * sh + i - top
            if hi < 0 or hi >= h:
                continue
            for j in range(kw):
                q0, q1 = _inside(j, sw, left, w, wo)
                for o in range(f):
                    src = zt[(i * kw + j) * f + o, b, hi]
                    for q in range(q0, q1):
                        out[q, o] += src[q * sw + j - left]


@njit(parallel=True, cache=True)
def spread_taps(dy, n0, n1, kh, kw, sh, sw, top, left, gt):
    """gt[(i*kw + j)*F + o, b-n0, p*sh+i-top, q*sw+j-left] = dy[b, p, q, o]; zero where no
    output's tap reads the pixel: dy spread back onto the input pixels its taps read."""
    _, ho, wo, f = dy.shape
    taps, _, h, w = gt.shape
    for r in prange((n1 - n0) * h):
        for t in range(taps):
            gt[t, r // h, r % h, :] = 0
    for r in prange((n1 - n0) * ho):  # rows p write rows p*sh+i-top: distinct p, distinct rows
        b = r // ho
        p = r % ho
        src = dy[n0 + b, p]
        for i in range(kh):
            hi = p * sh + i - top
            if hi < 0 or hi >= h:
                continue
            for j in range(kw):
                q0, q1 = _inside(j, sw, left, w, wo)
                for o in range(f):
                    dst = gt[(i * kw + j) * f + o, b, hi]
                    for q in range(q0, q1):
                        dst[q * sw + j - left] = src[q, o]


@njit(inline="always")
def _inside(j, stride, pad, w, out_len):
    """The outputs q whose tap j reads inside the image: 0 <= q*stride + j - pad < w."""
    q0 = max(0, (pad - j + stride - 1) // stride)
    q1 = min(out_len, (w - 1 + pad - j) // stride + 1)
    return q0, q1


def _workspace_shape(pixels, taps_by_channels, transposed):
    """im2col's cols: (pixels, kh*kw*C); with few channels, transposed."""
    return (taps_by_channels, pixels) if transposed else (pixels, taps_by_channels)


def _patches(x, n0, n1, g, transposed, cols):
    """im2col of images n0..n1 into ``cols``; returns their patches as a (pixels, kh*kw*C) view
    (of the transposed workspace, transposed back, where ``transposed``)."""
    threads_for(cols.size)
    im2col(x, n0, n1, g.kh, g.kw, g.sh, g.sw, g.top, g.left, g.ho, g.wo, transposed, cols)
    rows = (n1 - n0) * g.ho * g.wo
    return cols[:, :rows].T if transposed else cols[:rows]


def _chunk(n, image_bytes, budget=None):
    """Images per chunk so that one chunk's workspace stays near ``budget`` bytes."""
    budget = CHUNK_BYTES if budget is None else budget
    return max(1, min(n, budget // max(image_bytes, 1)))


def conv2d_forward(x, kernel, bias, g):
    kh, kw, c, f = kernel.shape
    n = x.shape[0]
    x = np.ascontiguousarray(x)
    if f <= FEW_FILTERS:
        y = _few_filters_forward(x, kernel, g)
        if bias is not None:
            y += bias
        return y
    kr = kernel.reshape(kh * kw * c, f)
    pixels = g.ho * g.wo
    y = pool.empty((n * pixels, f), x.dtype)
    chunk = _chunk(n, pixels * kh * kw * c * x.itemsize)
    transposed = c <= FEW_CHANNELS
    cols = pool.empty(_workspace_shape(chunk * pixels, kh * kw * c, transposed), x.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        gemm.matmul(_patches(x, n0, n1, g, transposed, cols), kr, y[n0 * pixels : n1 * pixels])
    if bias is not None:
        y += bias
    return y.reshape(n, g.ho, g.wo, f)


def conv2d_backward_data(dy, kernel, g, *, bias=None):
    kh, kw, c, f = kernel.shape
    n = dy.shape[0]
    dy = np.ascontiguousarray(dy)
    if bias is not None:
        channel_vectors("conv2d_backward_data", c, bias=bias)
    if f <= FEW_FILTERS:
        dx = _few_filters_backward_data(dy, kernel, g)
        if bias is not None:
            dx += bias
        return dx
    start = np.zeros(c, dy.dtype) if bias is None else np.ascontiguousarray(bias, dtype=dy.dtype)
    dx = pool.empty((n, g.h, g.w, c), dy.dtype)
    kr = kernel.reshape(kh * kw * c, f)
    pixels = g.ho * g.wo
    dy2 = dy.reshape(n * pixels, f)
    chunk = _chunk(n, pixels * kh * kw * c * dy.itemsize)
    transposed = c <= FEW_CHANNELS
    dcols = pool.empty(_workspace_shape(chunk * pixels, kh * kw * c, transposed), dy.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        rows = (n1 - n0) * pixels
        threads_for(dcols.size)
        if transposed:  # dcols^T = K @ dy^T (a transposed `out` would leave BLAS)
            gemm.matmul(kr, dy2[n0 * pixels : n1 * pixels].T, dcols[:, :rows])
        else:
            gemm.matmul(dy2[n0 * pixels : n1 * pixels], kr.T, dcols[:rows])
        col2im(dcols, n0, n1, kh, kw, g.sh, g.sw, g.top, g.left, g.ho, g.wo, transposed, start, dx)
    return dx


def conv2d_backward_weights(dy, x, g):
    kh, kw = g.kh, g.kw
    n, c, f = x.shape[0], x.shape[3], dy.shape[3]
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    if f <= FEW_FILTERS:
        return _few_filters_backward_weights(dy, x, g)
    pixels = g.ho * g.wo
    dy2 = dy.reshape(n * pixels, f)
    dk = np.zeros((kh * kw * c, f), dtype=x.dtype)
    chunk = _chunk(n, pixels * kh * kw * c * x.itemsize)
    transposed = c <= FEW_CHANNELS
    cols = pool.empty(_workspace_shape(chunk * pixels, kh * kw * c, transposed), x.dtype)
    part = np.empty_like(dk)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        gemm.matmul(_patches(x, n0, n1, g, transposed, cols).T, dy2[n0 * pixels : n1 * pixels], part)
        dk += part
    return dk.reshape(kh, kw, c, f)


# --- few filters: a GEMM against the input's pixels, then a shifted sum ---------------------
def _few_filters_forward(x, kernel, g):
    """zt = (kernel as (kh*kw*F, C)) @ x_pixels^T, then y = sum_taps(zt)."""
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x.shape
    km = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2).reshape(kh * kw * f, c))
    pixels = x.reshape(n * h * w, c)
    y = pool.empty((n, g.ho, g.wo, f), x.dtype)
    chunk = _chunk(n, h * w * kh * kw * f * x.itemsize, TAPS_CHUNK_BYTES)
    zt = pool.empty((kh * kw * f, chunk * h * w), x.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        z = zt[:, : (n1 - n0) * h * w]
        gemm.matmul(km, pixels[n0 * h * w : n1 * h * w].T, z)
        threads_for(z.size)
        sum_taps(z.reshape(kh * kw * f, n1 - n0, h, w), n0, n1, kh, kw, g.sh, g.sw, g.top, g.left, y)
    return y


def _few_filters_backward_data(dy, kernel, g):
    """gt = spread_taps(dy), then dx_pixels = gt^T @ (kernel as (kh*kw*F, C))."""
    kh, kw, c, f = kernel.shape
    n, h, w = dy.shape[0], g.h, g.w
    km = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2).reshape(kh * kw * f, c))
    dx = pool.empty((n, h, w, c), dy.dtype)
    dx_pixels = dx.reshape(n * h * w, c)
    chunk = _chunk(n, h * w * kh * kw * f * dy.itemsize, TAPS_CHUNK_BYTES)
    gt = pool.empty((kh * kw * f, chunk * h * w), dy.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        part = gt[:, : (n1 - n0) * h * w]
        threads_for(part.size)
        spread_taps(dy, n0, n1, kh, kw, g.sh, g.sw, g.top, g.left, part.reshape(kh * kw * f, n1 - n0, h, w))
        gemm.matmul(part.T, km, dx_pixels[n0 * h * w : n1 * h * w])
    return dx


def _few_filters_backward_weights(dy, x, g):
    """gt = spread_taps(dy), then dk (as (kh*kw*F, C)) = sum over chunks of gt @ x_pixels."""
    kh, kw = g.kh, g.kw
    n, h, w, c = x.shape
    f = dy.shape[3]
    pixels = x.reshape(n * h * w, c)
    dk = np.zeros((kh * kw * f, c), dtype=x.dtype)
    part_dk = np.empty_like(dk)
    chunk = _chunk(n, h * w * kh * kw * f * x.itemsize, TAPS_CHUNK_BYTES)
    gt = pool.empty((kh * kw * f, chunk * h * w), x.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        part = gt[:, : (n1 - n0) * h * w]
        threads_for(part.size)
        spread_taps(dy, n0, n1, kh, kw, g.sh, g.sw, g.top, g.left, part.reshape(kh * kw * f, n1 - n0, h, w))
        gemm.matmul(part, pixels[n0 * h * w : n1 * h * w], part_dk)
        dk += part_dk
    return dk.reshape(kh, kw, f, c).transpose(0, 1, 3, 2)


KERNELS = {
    "conv2d_forward": conv2d_forward,
    "conv2d_backward_data": conv2d_backward_data,
    "conv2d_backward_weights": conv2d_backward_weights,
}
