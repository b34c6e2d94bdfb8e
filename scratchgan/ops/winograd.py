"""Winograd minimal filtering (Lavin and Gray, 2016): stride-1 convolutions with fewer multiplications.

F(m, r) computes m outputs of an r-tap correlation ``y[i] = sum_k d[i+k] g[k]`` from
alpha = m + r - 1 inputs with alpha multiplications instead of m*r::

    y = AT @ ((G @ g) * (BT @ d))                 1-D:  AT (m, alpha), G (alpha, r), BT (alpha, alpha)
    Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T     2-D, F(m x m, r x r), nesting the 1-D form

The matrices come from Toom-Cook: evaluate at alpha - 1 finite points and at infinity,
multiply pointwise, interpolate (:func:`winograd_matrices`; derivation in
docs/derivations.md, "Winograd convolution"). They are exact in rational arithmetic;
in float32 the error grows with the tile (the points spread further from 1).

A convolution over many channels becomes, per tile point (xi, nu) of the alpha x alpha
grid, one GEMM over the channels::

    V[xi,nu, t, c]  = (BT d_t BT^T)[xi, nu]        input tile t, channel c    (input transform)
    U[xi,nu, c, f]  = (G k[:, :, c, f] G^T)[xi, nu]                           (filter transform)
    M[xi,nu]        = V[xi,nu] @ U[xi,nu]          (tiles, C) @ (C, F)        (alpha^2 GEMMs)
    y tile t, f     = AT M[:, :, t, f] AT^T                                   (output transform)

so a 5x5 convolution with F(4x4, 5x5) does 64 multiplications per 16 outputs where
im2col does 25 per output: 6.25x fewer. The three passes of a stride-1 layer:

* forward: ``correlate(x, k)`` with the layer's paddings;
* backward-data: ``dx`` is a stride-1 correlation of ``dy`` with the kernel flipped in
  space and its channel axes swapped, padded by ``kh - 1 - top`` (so a stride-1
  transposed convolution, whose forward is this pass, is served too);
* backward-weights: ``dk[i, j] = sum_{n,p,q} x[n, p-top+i, q-left+j] dy[n, p, q]`` is a
  correlation of x with dy tiles as the filter and r x r outputs: F(r x r, m x m), whose
  GEMMs sum over the tiles, ``Mw[xi,nu] = V[xi,nu]^T @ W[xi,nu]`` (C, tiles) @ (tiles, F).

Shapes as in conv.py: x (N, H, W, C), kernel (kh, kw, C, F), y (N, Ho, Wo, F); ``g`` the
layer's Window, which must have strides 1 and a square 3x3 or 5x5 kernel (:func:`serves`).
``tile`` is a :class:`Tile` (:func:`tile`): the output tile m (2 or 4) and the matrices of
F(m x m, r x r) and F(r x r, m x m), computed once and handed to every call as the Window
is. These are the NumPy references; the Numba backend fuses the transforms
(kernels/numba/winograd.py).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import UsageError
from ..xp import array_module
from .registry import op

#: kernel sizes r the Winograd path serves (square r x r, stride 1)
KERNEL_SIZES = (3, 5)
#: output tile sizes m it offers: F(2x2, r x r) and F(4x4, r x r)
TILES = (2, 4)
#: the interpolation points, in the order they are used (infinity comes last, always)
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2), 3, -3)


def serves(g, kernel_shape=None) -> str | None:
    """None if the Winograd path serves window ``g``; else why not, in a few words."""
    if (g.sh, g.sw) != (1, 1):
        return f"stride {g.sh}x{g.sw} (Winograd serves stride 1 only)"
    if g.kh != g.kw or g.kh not in KERNEL_SIZES:
        return f"kernel {g.kh}x{g.kw} (Winograd serves 3x3 and 5x5 only)"
    return None


def _inverse(rows):
    """The inverse of a square matrix of Fractions, by Gauss-Jordan elimination (exact)."""
    n = len(rows)
    a = [list(map(Fraction, row)) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(rows)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if a[i][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        a[col] = [v / a[col][col] for v in a[col]]
        for i in range(n):
            if i != col and a[i][col] != 0:
                a[i] = [v - a[i][col] * p for v, p in zip(a[i], a[col])]
    return [row[n:] for row in a]


def _evaluations(points, size):
    """Rows [1, a, a^2, ..., a^(size-1)] per finite point a, then [0, ..., 0, 1] for infinity."""
    return [[Fraction(a) ** k for k in range(size)] for a in points] + [[Fraction(0)] * (size - 1) + [Fraction(1)]]


@functools.lru_cache(maxsize=None)
def winograd_fractions(m: int, r: int):
    """(AT, G, BT) of F(m, r) as nested lists of exact Fractions.

    Toom-Cook for the linear convolution s = u * g (u of length m, g of length r,
    s of length alpha): s = C ((A u) * (G g)), where A and G evaluate the polynomials at
    the alpha points and C = V^-1 interpolates (V evaluates a degree alpha-1 polynomial).
    The correlation y[i] = sum_k d[i+k] g[k] is that map's transpose in u, so
    y = A^T ((G g) * (C^T d)): AT = A^T and BT = C^T. Each row j of BT is scaled to small
    integers and row j of G divided by the same factor, which changes nothing exactly and
    keeps float32's rounding in the transforms low.
    """
    alpha = m + r - 1
    if not 2 <= alpha <= len(POINTS) + 1:
        raise UsageError(f"F({m}, {r}) needs {alpha} points; at most {len(POINTS) + 1} are known")
    points = POINTS[: alpha - 1]
    c = _inverse(_evaluations(points, alpha))
    a = _evaluations(points, m)
    g = _evaluations(points, r)
    bt = [[c[k][j] for k in range(alpha)] for j in range(alpha)]  # C^T
    for j, row in enumerate(bt):
        denominators = np.lcm.reduce([v.denominator for v in row])
        numerators = np.gcd.reduce([abs(v.numerator) for v in row if v != 0])
        scale = Fraction(int(denominators), int(numerators))
        bt[j] = [v * scale for v in row]
        g[j] = [v / scale for v in g[j]]
    at = [[a[k][i] for k in range(alpha)] for i in range(m)]
    return at, g, bt


@functools.lru_cache(maxsize=None)
def winograd_matrices(m: int, r: int, dtype=np.float64):
    """(AT (m, alpha), G (alpha, r), BT (alpha, alpha)) of F(m, r) as read-only arrays of ``dtype``."""
    out = []
    for rows in winograd_fractions(m, r):
        a = np.array([[float(v) for v in row] for row in rows], dtype=dtype)
        a.flags.writeable = False
        out.append(a)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Tile:
    """F(m x m, r x r): ``at`` (m, alpha), ``g`` (alpha, r), ``bt`` (alpha, alpha), and for the
    backward-weights pass F(r x r, m x m)'s ``at_w`` (r, alpha) and ``g_w`` (alpha, m) (its BT
    is ``bt``: both come from the same points). Float64, read-only."""

    m: int
    r: int
    at: np.ndarray
    g: np.ndarray
    bt: np.ndarray
    at_w: np.ndarray
    g_w: np.ndarray

    @property
    def alpha(self) -> int:
        return self.m + self.r - 1

    def __str__(self):
        return f"F({self.m}x{self.m},{self.r}x{self.r})"


@functools.lru_cache(maxsize=None)
def tile(m: int, r: int) -> Tile:
    """The Tile of F(m x m, r x r); UsageError for a tile or kernel size not offered."""
    if m not in TILES or r not in KERNEL_SIZES:
        raise UsageError(f"Winograd F({m}x{m},{r}x{r}): expected m in {TILES} and r in {KERNEL_SIZES}")
    at, g, bt = winograd_matrices(m, r)
    at_w, g_w, bt_w = winograd_matrices(r, m)
    assert np.array_equal(bt, bt_w), "F(m, r) and F(r, m) share their input transform"
    return Tile(m, r, at, g, bt, at_w, g_w)


def tile_counts(out_h: int, out_w: int, m: int) -> tuple[int, int]:
    """How many m x m output tiles cover an out_h x out_w output."""
    return -(-out_h // m), -(-out_w // m)


def _tiles(x, top, left, out_h, out_w, m, alpha):
    """(N, tiles_h, tiles_w, alpha, alpha, C): the input tile of each m x m output tile; tile
    (ty, tx) starts at row ty*m - top, column tx*m - left, zeros outside x."""
    xp = array_module(x)
    n, h, w, c = x.shape
    th, tw = tile_counts(out_h, out_w, m)
    rows, cols = (th - 1) * m + alpha, (tw - 1) * m + alpha
    canvas = xp.zeros((n, rows, cols, c), dtype=x.dtype)
    r0, r1 = max(0, -top), min(h, rows - top)  # x's rows that land on the canvas (at row + top)
    c0, c1 = max(0, -left), min(w, cols - left)
    if r1 > r0 and c1 > c0:
        canvas[:, top + r0 : top + r1, left + c0 : left + c1] = x[:, r0:r1, c0:c1]
    tiles = xp.empty((n, th, tw, alpha, alpha, c), dtype=x.dtype)
    for i in range(alpha):
        for j in range(alpha):
            tiles[:, :, :, i, j] = canvas[:, i : i + (th - 1) * m + 1 : m, j : j + (tw - 1) * m + 1 : m]
    return tiles


def _untile(tiles, out_h, out_w):
    """(N, tiles_h, tiles_w, m, m, F) -> (N, out_h, out_w, F), cropping the last tiles."""
    n, th, tw, m, _, f = tiles.shape
    return tiles.transpose(0, 1, 3, 2, 4, 5).reshape(n, th * m, tw * m, f)[:, :out_h, :out_w]


def correlate(x, kernel, top, left, out_h, out_w, t):
    """y[n,p,q,f] = sum_{i,j,c} x[n, p-top+i, q-left+j, c] kernel[i,j,c,f] (zeros outside x),
    for p < out_h, q < out_w, by the Tile ``t``'s F(m x m, r x r)."""
    xp = array_module(x)
    c, f = kernel.shape[2:]
    m, alpha = t.m, t.alpha
    at, g, bt = (xp.asarray(a, dtype=x.dtype) for a in (t.at, t.g, t.bt))
    d = _tiles(x, top, left, out_h, out_w, m, alpha)
    v = xp.einsum("ia,ntsabc,jb->ijntsc", bt, d, bt, optimize=True)  # input transform
    u = xp.einsum("ia,abcf,jb->ijcf", g, kernel, g, optimize=True)  # filter transform
    n, th, tw = d.shape[:3]
    mt = xp.matmul(v.reshape(alpha * alpha, n * th * tw, c), u.reshape(alpha * alpha, c, f))
    y = xp.einsum("ui,ijntsf,vj->ntsuvf", at, mt.reshape(alpha, alpha, n, th, tw, f), at, optimize=True)
    return _untile(y, out_h, out_w)


def flipped(kernel):
    """The kernel of the backward-data correlation: flipped in space, channel axes swapped."""
    return kernel[::-1, ::-1].transpose(0, 1, 3, 2)


def _check(g, t):
    why = serves(g)
    if why is not None:
        raise UsageError(f"the Winograd convolution cannot run this layer: {why}")
    if not isinstance(t, Tile) or t.r != g.kh:
        raise UsageError(f"Winograd: expected the Tile of a {g.kh}x{g.kw} kernel, got {t}")


@op
def winograd_conv2d_forward(x, kernel, bias, g, tile):
    """y = conv(x, kernel) + bias by F(m x m, r x r).  x (N,H,W,C), kernel (r,r,C,F), bias (F,) or None -> (N,Ho,Wo,F)."""
    _check(g, tile)
    y = correlate(x, kernel, g.top, g.left, g.ho, g.wo, tile)
    if bias is not None:
        y = y + bias
    return array_module(x).ascontiguousarray(y)


@op
def winograd_conv2d_backward_data(dy, kernel, g, tile, *, bias=None):
    """dx = correlate(dy, flipped kernel) padded by r-1-top, r-1-left (+ bias (C,), as
    conv2d_backward_data).  dy (N,Ho,Wo,F) -> (N,H,W,C)."""
    _check(g, tile)
    dx = correlate(dy, flipped(kernel), g.kh - 1 - g.top, g.kw - 1 - g.left, g.h, g.w, tile)
    return array_module(dy).ascontiguousarray(dx if bias is None else dx + bias)


@op
def winograd_conv2d_backward_weights(dy, x, g, tile):
    """dkernel[i,j,c,f] = sum_{n,p,q} x[n,p-top+i,q-left+j,c] dy[n,p,q,f] by F(r x r, m x m), summed
    over dy's m x m tiles.  dy (N,Ho,Wo,F), x (N,H,W,C) -> (r,r,C,F)."""
    _check(g, tile)
    xp = array_module(x)
    c, f = x.shape[-1], dy.shape[-1]
    m, alpha = tile.m, tile.alpha
    at, gw, bt = (xp.asarray(a, dtype=x.dtype) for a in (tile.at_w, tile.g_w, tile.bt))  # F(r, m)
    d = _tiles(x, g.top, g.left, g.ho, g.wo, m, alpha).reshape(-1, alpha, alpha, c)
    dyt = _tiles(dy, 0, 0, g.ho, g.wo, m, m).reshape(-1, m, m, f)  # dy's m x m tiles, zero past the edge
    v = xp.einsum("ia,tabc,jb->ijtc", bt, d, bt, optimize=True).reshape(alpha * alpha, -1, c)
    w = xp.einsum("ia,tabf,jb->ijtf", gw, dyt, gw, optimize=True).reshape(alpha * alpha, -1, f)
    mw = xp.matmul(v.transpose(0, 2, 1), w).reshape(alpha, alpha, c, f)  # summed over tiles
    return xp.ascontiguousarray(xp.einsum("ui,ijcf,vj->uvcf", at, mw, at, optimize=True))
