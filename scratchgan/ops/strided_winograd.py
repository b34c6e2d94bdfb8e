"""Stride-2 5x5 convolutions by Winograd: a stride-1 3x3 convolution on 2x2 blocks.

Output pixel p of a stride-2 convolution reads input rows 2p + i - top, taps i = 0..4.
Write i - top = 2u + v with v in {0, 1}: the row is 2(p + u) + v, which is row p + u of
the *blocked* input X, X[q, (v, c)] = x[2q + v, c] (half the rows, twice the channels;
both axes at once: space-to-depth, 4C channels ordered (v, v', c)). So, with the
block offsets u, u' running over three values each, from umin = floor(-top / 2)::

    y[p, q, f] = sum_{u, u'} sum_{(v, v', c)} X[p + u, q + u', (v, v', c)] K[u, u', (v, v', c), f]
    K[u, u', (v, v', c), f] = k[2u + v + top, 2u' + v' + left, c, f]   (0 outside 0..4)

(stored at u - umin: 0, 1, 2), a stride-1 correlation with a 3x3 kernel, which F(m x m, 3x3) serves
(scratchgan/ops/winograd.py). F(m x m, 3x3) does alpha^2 / m^2 multiplications per output
and blocked channel, and there are 4 blocked channels per original one: F(4x4, 3x3)
does 4 * 36/16 = 9 where the direct convolution (and im2col) does 25, 2.8x fewer;
F(2x2, 3x3) 4 * 16/4 = 16, 1.6x fewer. That counts the blocked kernel's 11 zero taps of
36, which are multiplied too: the price of the blocking. Derivation: docs/derivations.md
("Stride 2 on 2x2 blocks").

The three passes:

* forward: ``y = correlate3x3(X, K)``;
* backward-data: dX by the stride-1 pass, then dx = the blocks unfolded (rows of X past
  x's end, when H or W is odd, are dropped);
* backward-weights: dK by the stride-1 pass over X and dy, then k's taps read out of it
  (the zero taps' gradients are dropped: they are not weights).

These compose the stride-1 Winograd ops' dispatchers with array reshapes, so every
backend with Winograd kernels runs them; the bench times each as one op.
"""
from __future__ import annotations

import functools

from ..errors import UsageError
from ..xp import array_module
from .geometry import Window
from .registry import composed_op
from .winograd import (
    _check as _check_stride1,
    winograd_conv2d_backward_data,
    winograd_conv2d_backward_weights,
    winograd_conv2d_forward,
)

#: the window the blocking serves: stride 2, kernel 5x5 (its blocked kernel is 3x3)
STRIDE, KERNEL, BLOCKED_KERNEL = 2, 5, 3


def serves(g) -> str | None:
    """None if window ``g`` runs as a 3x3 convolution on 2x2 blocks; else why not."""
    if (g.sh, g.sw) != (STRIDE, STRIDE) or (g.kh, g.kw) != (KERNEL, KERNEL):
        return f"stride {g.sh}x{g.sw}, kernel {g.kh}x{g.kw} (2x2 blocks serve stride 2 with a 5x5 kernel only)"
    return None


def _front(pad: int) -> int:
    """The zero taps put before the kernel so that its taps fall in blocks: tap i sits at
    2u + v = i + front, front = pad mod 2 (the window then starts ceil(pad / 2) blocks up)."""
    return pad % 2


@functools.lru_cache(maxsize=None)
def blocked_window(g) -> Window:
    """The stride-1 3x3 Window over the blocked input that computes ``g``'s output."""
    h, w = -(-g.h // 2), -(-g.w // 2)
    top, left = -(-g.top // 2), -(-g.left // 2)  # ceil(pad / 2) blocks of padding
    bottom = max(0, g.ho + BLOCKED_KERNEL - 1 - top - h)
    right = max(0, g.wo + BLOCKED_KERNEL - 1 - left - w)
    return Window(h, w, BLOCKED_KERNEL, BLOCKED_KERNEL, 1, 1, g.ho, g.wo, top, bottom, left, right)


def to_blocks(x):
    """(N, H, W, C) -> (N, ceil(H/2), ceil(W/2), 4C), channels ordered (v, v', c): X[q, r, (v, v', c)]
    = x[2q + v, 2r + v', c]; an odd H or W is padded with a zero row or column first."""
    xp = array_module(x)
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        even = xp.zeros((n, h + h % 2, w + w % 2, c), x.dtype)
        even[:, :h, :w] = x
        x = even
    hb, wb = x.shape[1] // 2, x.shape[2] // 2
    return xp.ascontiguousarray(x.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, 4 * c))


def from_blocks(xb, h: int, w: int):
    """to_blocks's inverse, cropped to h x w: (N, Hb, Wb, 4C) -> (N, h, w, C)."""
    xp = array_module(xb)
    n, hb, wb, c4 = xb.shape
    c = c4 // 4
    x = xb.reshape(n, hb, wb, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * hb, 2 * wb, c)
    return xp.ascontiguousarray(x[:, :h, :w])


def blocked_kernel(kernel, g):
    """(5, 5, C, F) -> (3, 3, 4C, F): K[u, u', (v, v', c), f] = k[2u + v - front, 2u' + v' - front', c, f],
    0 where that is outside 0..4: k padded to 6x6 (front zeros before, the rest after), its
    rows and columns then read in pairs."""
    xp = array_module(kernel)
    _, _, c, f = kernel.shape
    fh, fw = _front(g.top), _front(g.left)
    r = BLOCKED_KERNEL
    padded = xp.zeros((2 * r, 2 * r, c, f), kernel.dtype)
    padded[fh : fh + g.kh, fw : fw + g.kw] = kernel
    return xp.ascontiguousarray(padded.reshape(r, 2, r, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(r, r, 4 * c, f))


def kernel_from_blocks(kb, g):
    """blocked_kernel's adjoint: (3, 3, 4C, F) -> (5, 5, C, F), the taps of k read back out
    (the padding's taps are not weights: dropped)."""
    xp = array_module(kb)
    r, c, f = BLOCKED_KERNEL, kb.shape[2] // 4, kb.shape[3]
    fh, fw = _front(g.top), _front(g.left)
    padded = kb.reshape(r, r, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(2 * r, 2 * r, c, f)
    return xp.ascontiguousarray(padded[fh : fh + g.kh, fw : fw + g.kw])


def _check(g, tile):
    why = serves(g)
    if why is not None:
        raise UsageError(f"the blocked Winograd convolution cannot run this layer: {why}")
    _check_stride1(blocked_window(g), tile)


@composed_op
def strided_winograd_conv2d_forward(x, kernel, bias, g, tile):
    """y = conv(x, kernel) + bias for a stride-2 5x5 window, as F(m x m, 3x3) on 2x2 blocks."""
    _check(g, tile)
    return winograd_conv2d_forward(to_blocks(x), blocked_kernel(kernel, g), bias, blocked_window(g), tile)


@composed_op
def strided_winograd_conv2d_backward_data(dy, kernel, g, tile, *, bias=None):
    """dx (N, H, W, C) of a stride-2 5x5 window (+ bias (C,)), by the blocked stride-1 pass."""
    _check(g, tile)
    xp = array_module(dy)
    blocked_bias = None if bias is None else xp.tile(bias, 4)  # the same bias for each (v, v') block
    dxb = winograd_conv2d_backward_data(dy, blocked_kernel(kernel, g), blocked_window(g), tile, bias=blocked_bias)
    return from_blocks(dxb, g.h, g.w)


@composed_op
def strided_winograd_conv2d_backward_weights(dy, x, g, tile):
    """dkernel (5, 5, C, F) of a stride-2 5x5 window, by the blocked stride-1 pass."""
    _check(g, tile)
    dkb = winograd_conv2d_backward_weights(dy, to_blocks(x), blocked_window(g), tile)
    return kernel_from_blocks(dkb, g)
