"""Winograd convolution kernels: fused tile transforms around one batched BLAS GEMM.

The math and the NumPy reference: scratchgan/ops/winograd.py, which also derives the
transform matrices and hands them to every call in a Tile record (``tile.m``, ``tile.r``,
``tile.at``, ``tile.g``, ``tile.bt``, ``tile.at_w``, ``tile.g_w``), as the layer's Window
carries its geometry. Here the work is split so
that only the GEMMs see the channels' full width and nothing else is ever materialised:

* ``transform_tiles`` reads each tile of the input straight from x (zeros outside it, so
  no padded copy), applies ``L d L^T`` (BT for the input, G for dy's tiles in the
  backward-weights pass) and writes each tile's alpha^2 x C results as one contiguous
  block, ``out[tile, xi*alpha + nu, channel]``: one pass, one sequential write per value.
  (Point-major, ``out[xi*alpha + nu, tile, channel]``, wrote 64 streams whose strides
  were multiples of 4 KiB: they fought over the same cache sets, 1.5-2x slower.)
* NumPy's BLAS multiplies the alpha^2 (tiles x C) @ (C x F) matrices (gemm.matmul: one
  BLAS thread per matrix, the matrices shared among the threads; np.matmul on the
  transposed views: each matrix's rows are alpha^2*C apart, which BLAS takes as its
  leading dimension, as fast as a contiguous one).
* ``untransform_tiles`` applies ``AT M AT^T`` per tile, adds the bias and writes the
  m x m outputs into y, cropping the last row and column of tiles.

Both transforms write each value once, summing a row of L's coefficients in registers
(``_combine``), and the input transform's first, vertical half runs along whole rows of
the image, so each column shared by two tiles is transformed once.

Images are processed in chunks whose transformed tiles take about CHUNK_BYTES, so the
GEMM's operands stay cache-sized and memory stays bounded. Each loop iteration is one
row of tiles of one image: no two iterations write one value.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import gemm, pool
from .conv import _chunk
from .checks import KernelArgumentError
from .threads import threads_for

CHUNK_BYTES = 16 << 20


#: the most terms a transform sums per value (alpha of F(4x4, 5x5))
TERMS = 8


@njit(inline="always")
def _combine4(dst, init, coef, buf, idx):
    """dst[ch] = init[ch] + sum_k coef[k] * buf[idx[k], ch] for k < 4, over the channels."""
    c0 = coef[0]; c1 = coef[1]; c2 = coef[2]; c3 = coef[3]  # noqa: E702
    i0 = idx[0]; i1 = idx[1]; i2 = idx[2]; i3 = idx[3]  # noqa: E702
    for ch in range(dst.shape[0]):
        dst[ch] = init[ch] + c0 * buf[i0, ch] + c1 * buf[i1, ch] + c2 * buf[i2, ch] + c3 * buf[i3, ch]


@njit(inline="always")
def _combine8(dst, init, coef, buf, idx):
    """dst[ch] = init[ch] + sum_k coef[k] * buf[idx[k], ch] for k < 8, over the channels."""
    c0 = coef[0]; c1 = coef[1]; c2 = coef[2]; c3 = coef[3]  # noqa: E702
    c4 = coef[4]; c5 = coef[5]; c6 = coef[6]; c7 = coef[7]  # noqa: E702
    i0 = idx[0]; i1 = idx[1]; i2 = idx[2]; i3 = idx[3]  # noqa: E702
    i4 = idx[4]; i5 = idx[5]; i6 = idx[6]; i7 = idx[7]  # noqa: E702
    for ch in range(dst.shape[0]):
        dst[ch] = (init[ch] + c0 * buf[i0, ch] + c1 * buf[i1, ch] + c2 * buf[i2, ch] + c3 * buf[i3, ch]
                   + c4 * buf[i4, ch] + c5 * buf[i5, ch] + c6 * buf[i6, ch] + c7 * buf[i7, ch])


@njit(inline="always")
def _combine(dst, init, coef, buf, idx, terms):
    """One output vector of a transform, written once: the terms' products summed in
    registers. An axpy per term instead read and wrote dst once per term, in short loops
    over the channels: the input transform moved 4-6 GB/s that way and 11-14 GB/s with the
    GEMMs split (examples/winograd_layers.py --parts; performance.md). coef and idx have
    TERMS entries; the unused ones have coefficient 0 and point at a zero row or one of the
    same tile's values."""
    if terms <= 4:
        _combine4(dst, init, coef, buf, idx)
    else:
        _combine8(dst, init, coef, buf, idx)


@njit(parallel=True, cache=True)
def transform_tiles(src, n0, n1, tiles_h, tiles_w, step, origin_h, origin_w, L, coef, out):
    """out[t, xi*alpha + nu, c] = sum_{a,b} L[xi, a] src[n, h0 + a, w0 + b, c] L[nu, b]

    for tile t = ((n - n0)*tiles_h + ty)*tiles_w + tx of images n0..n1, whose s x s patch
    (s = L's columns) starts at h0 = origin_h + ty*step, w0 = origin_w + tx*step; src reads
    as zero outside its bounds. L is (alpha, s), coef is L padded with zero columns to
    (alpha, TERMS); out is (tiles, alpha*alpha, C).

    Per row of tiles: ``rows[xi] = sum_a L[xi, a] src[n, h0 + a]`` over the whole width the
    row of tiles covers (long runs of contiguous values; a column shared by two tiles is
    transformed once), then per tile and output point one _combine over its s columns."""
    _, h, w, c = src.shape
    alpha, s = L.shape
    span = (tiles_w - 1) * step + s  # the columns a row of tiles covers, from origin_w
    for row in prange((n1 - n0) * tiles_h):
        n = n0 + row // tiles_h
        h0 = origin_h + (row % tiles_h) * step
        rows = np.zeros((alpha, span + 1, c), dtype=out.dtype)  # [xi, column - origin_w]; the last stays zero
        flat = rows.reshape(alpha, (span + 1) * c)
        w_lo, w_hi = max(0, origin_w), min(w, origin_w + span)  # src's columns inside the span
        if w_hi > w_lo:
            start, length = (w_lo - origin_w) * c, (w_hi - w_lo) * c
            for a in range(s):
                hh = h0 + a
                if hh < 0 or hh >= h:
                    continue
                line = src[n, hh].reshape(-1)[w_lo * c : w_hi * c]
                for xi in range(alpha):
                    k = L[xi, a]
                    if k != 0:
                        dst = flat[xi, start : start + length]
                        for i in range(length):
                            dst[i] += k * line[i]
        zero = np.zeros(c, dtype=out.dtype)
        idx = np.empty(TERMS, np.int64)
        for tx in range(tiles_w):
            t = row * tiles_w + tx
            for b in range(TERMS):
                idx[b] = tx * step + b if b < s else span
            for xi in range(alpha):
                for nu in range(alpha):
                    _combine(out[t, xi * alpha + nu], zero, coef[nu], rows[xi], idx, s)


@njit(parallel=True, cache=True)
def untransform_tiles(mt, n0, n1, tiles_h, tiles_w, L, coef, bias, y):
    """y[n, ty*m + u, tx*m + v, f] = bias[f] + sum_{xi,nu} L[u, xi] mt[t, xi*alpha + nu, f] L[v, nu]

    for every tile t of images n0..n1 (numbered as in transform_tiles) and u, v < m inside
    y; L is AT (m, alpha), coef is L padded with zero columns to (m, TERMS); ``bias`` is (F,),
    zeros for none. Per tile: ``part[u, nu] = sum_xi L[u, xi] M[xi, nu]``, then each output
    pixel once, from the bias and one _combine over part[u]'s alpha rows."""
    _, ho, wo, f = y.shape
    m, alpha = L.shape
    for row in prange((n1 - n0) * tiles_h):
        n = n0 + row // tiles_h
        ty = row % tiles_h
        part = np.empty((m, alpha, f), dtype=y.dtype)
        zero = np.zeros(f, dtype=y.dtype)
        # column nu of M: mt[t]'s rows xi*alpha + nu; part[u]'s rows in order (the unused
        # terms read row 0, times 0)
        column = np.zeros((alpha, TERMS), np.int64)
        in_order = np.zeros(TERMS, np.int64)
        for nu in range(alpha):
            in_order[nu] = nu
            for xi in range(alpha):
                column[nu, xi] = xi * alpha + nu
        for tx in range(tiles_w):
            t = row * tiles_w + tx
            for u in range(m):
                for nu in range(alpha):
                    _combine(part[u, nu], zero, coef[u], mt[t], column[nu], alpha)
            for u in range(min(m, ho - ty * m)):
                for v in range(min(m, wo - tx * m)):
                    _combine(y[n, ty * m + u, tx * m + v], bias, coef[v], part[u], in_order, alpha)


def padded(L):
    """L (rows, k) with zero columns up to TERMS: the coefficients _combine reads."""
    out = np.zeros((L.shape[0], TERMS), L.dtype)
    out[:, : L.shape[1]] = L
    return out


def _check(name, g, tile, src, kernel_like, dims):
    """The launcher's guard: Numba's loops index without bounds checks, so every shape they
    rely on is checked here (a KernelArgumentError names what disagrees)."""
    if (g.sh, g.sw) != (1, 1) or g.kh != g.kw or g.kh != getattr(tile, "r", None):
        raise KernelArgumentError(f"{name}: Winograd serves stride 1 and a square kernel of the tile's "
                                  f"size; got {g} and {tile}")
    alpha = tile.m + tile.r - 1
    if alpha > TERMS:
        raise KernelArgumentError(f"{name}: {tile} has alpha = {alpha}; the transforms sum at most {TERMS} terms")
    shapes = {"at": (tile.m, alpha), "g": (alpha, tile.r), "bt": (alpha, alpha), "at_w": (tile.r, alpha),
              "g_w": (alpha, tile.m)}
    for field, shape in shapes.items():
        if getattr(tile, field).shape != shape:
            raise KernelArgumentError(f"{name}: tile.{field} is {getattr(tile, field).shape}, expected {shape}")
    if not isinstance(src, np.ndarray) or src.ndim != 4 or src.dtype.kind != "f":
        raise KernelArgumentError(f"{name}: expected a 4-D float array, got {getattr(src, 'dtype', type(src))} "
                                  f"{getattr(src, 'shape', '')}")
    if kernel_like.dtype != src.dtype:
        raise KernelArgumentError(f"{name}: dtypes differ ({src.dtype} and {kernel_like.dtype})")
    if tuple(src.shape[1:3]) != dims:
        raise KernelArgumentError(f"{name}: input is {src.shape[1]}x{src.shape[2]}, the layer's window "
                                  f"expects {dims[0]}x{dims[1]}")


def tile_counts(out_h, out_w, m):
    """How many m x m tiles cover an out_h x out_w output."""
    return -(-out_h // m), -(-out_w // m)


def sandwich(L, a):
    """L a L^T over a's first two axes: (p, q) and (q, q, ...) -> (p, p, ...), as two GEMMs."""
    p, q = L.shape
    rows = gemm.matmul(L, a.reshape(q, -1)).reshape(p, q, -1)  # [xi, b, ...] = sum_a L[xi, a] a[a, b, ...]
    out = np.empty((p, p, rows.shape[2]), rows.dtype)
    for xi in range(p):  # [xi, nu, ...] = sum_b L[nu, b] rows[xi, b, ...]
        gemm.matmul(L, rows[xi], out[xi])
    return out.reshape(p, p, *a.shape[2:])


def _correlate(x, kernel, top, left, out_h, out_w, tile, bias):
    """y = correlate(x, kernel) (+ bias), as scratchgan.ops.winograd.correlate, fused."""
    n, _, _, c = x.shape
    r, kw, kc, f = kernel.shape
    if (r, kw, kc) != (tile.r, tile.r, c) or (bias is not None and bias.shape != (f,)):
        raise KernelArgumentError(f"winograd: kernel {kernel.shape} and bias {getattr(bias, 'shape', None)} "
                                  f"do not fit an input of {c} channels and {tile}")
    at, g, bt = (a.astype(x.dtype) for a in (tile.at, tile.g, tile.bt))
    m, alpha = tile.m, tile.alpha
    th, tw = tile_counts(out_h, out_w, m)
    u = sandwich(g, np.ascontiguousarray(kernel, dtype=x.dtype)).reshape(alpha * alpha, c, f)
    x = np.ascontiguousarray(x)
    bias = np.zeros(f, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    y = pool.empty((n, out_h, out_w, f), x.dtype)
    per_image = alpha * alpha * th * tw * (c + f) * x.itemsize
    chunk = _chunk(n, per_image, CHUNK_BYTES)
    v = pool.empty((chunk * th * tw, alpha * alpha, c), x.dtype)
    mt = pool.empty((chunk * th * tw, alpha * alpha, f), x.dtype)
    threads_for(n * th * tw * alpha * alpha * c)  # the whole call's work: parallel pays at once
    bt_terms, at_terms = padded(bt), padded(at)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        tiles = (n1 - n0) * th * tw
        vs, ms = v[:tiles], mt[:tiles]
        transform_tiles(x, n0, n1, th, tw, m, -top, -left, bt, bt_terms, vs)
        gemm.matmul(vs.transpose(1, 0, 2), u, ms.transpose(1, 0, 2))  # per point: (tiles, C) @ (C, F)
        untransform_tiles(ms, n0, n1, th, tw, at, at_terms, bias, y)
    return y


def winograd_conv2d_forward(x, kernel, bias, g, tile):
    _check("winograd_conv2d_forward", g, tile, x, kernel, (g.h, g.w))
    return _correlate(x, kernel, g.top, g.left, g.ho, g.wo, tile, bias)


def winograd_conv2d_backward_data(dy, kernel, g, tile, *, bias=None):
    """dx: the correlation of dy with the kernel flipped in space, its channel axes swapped
    (+ bias, added by the output transform)."""
    _check("winograd_conv2d_backward_data", g, tile, dy, kernel, (g.ho, g.wo))
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
    return _correlate(dy, flipped, g.kh - 1 - g.top, g.kw - 1 - g.left, g.h, g.w, tile, bias)


def winograd_conv2d_backward_weights(dy, x, g, tile):
    _check("winograd_conv2d_backward_weights", g, tile, x, dy, (g.h, g.w))
    if dy.ndim != 4 or dy.shape[:3] != (x.shape[0], g.ho, g.wo):
        raise KernelArgumentError(f"winograd_conv2d_backward_weights: dy is {dy.shape}, expected "
                                  f"({x.shape[0]}, {g.ho}, {g.wo}, F)")
    n, c, f = x.shape[0], x.shape[3], dy.shape[3]
    at, gw, bt = (a.astype(x.dtype) for a in (tile.at_w, tile.g_w, tile.bt))  # F(r x r, m x m)
    m, alpha = tile.m, tile.alpha
    th, tw = tile_counts(g.ho, g.wo, m)
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    per_image = alpha * alpha * th * tw * (c + f) * x.itemsize
    chunk = _chunk(n, per_image, CHUNK_BYTES)
    v = pool.empty((chunk * th * tw, alpha * alpha, c), x.dtype)
    wt = pool.empty((chunk * th * tw, alpha * alpha, f), x.dtype)
    mw = np.zeros((alpha * alpha, c, f), x.dtype)
    part = np.empty_like(mw)
    threads_for(n * th * tw * alpha * alpha * c)
    bt_terms, gw_terms = padded(bt), padded(gw)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        tiles = (n1 - n0) * th * tw
        vs, ws = v[:tiles], wt[:tiles]
        transform_tiles(x, n0, n1, th, tw, m, -g.top, -g.left, bt, bt_terms, vs)
        transform_tiles(dy, n0, n1, th, tw, m, 0, 0, gw, gw_terms, ws)
        gemm.matmul(vs.transpose(1, 2, 0), ws.transpose(1, 0, 2), part)  # per point: (C, tiles) @ (tiles, F)
        mw += part
    return np.ascontiguousarray(sandwich(at, mw.reshape(alpha, alpha, c, f)))


KERNELS = {
    "winograd_conv2d_forward": winograd_conv2d_forward,
    "winograd_conv2d_backward_data": winograd_conv2d_backward_data,
    "winograd_conv2d_backward_weights": winograd_conv2d_backward_weights,
}
