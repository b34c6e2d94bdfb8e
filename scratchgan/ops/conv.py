"""2-D convolution (NHWC) as im2col + one GEMM, and its two backward passes.

Shapes: x (N, H, W, C), kernel (kh, kw, C, F), bias (F,), y (N, Ho, Wo, F). Every op
takes the layer's :class:`~scratchgan.ops.geometry.Window` ``g`` (sizes, strides, paddings),
computed once when the layer was built. Derivation: docs/derivations.md, "Conv2D".

Forward::

    y[n, p, q, f] = b[f] + sum_{i, j, c} xpad[n, p*sh + i, q*sw + j, c] * k[i, j, c, f]

im2col writes the patches as a matrix ``cols`` of shape (N*Ho*Wo, kh*kw*C), one
row per output pixel, so that ``y = cols @ k.reshape(kh*kw*C, F) + b``. It is
built with one strided slice per kernel tap (kh*kw copies), never a loop over
pixels or images.

Backward, with dy (N, Ho, Wo, F) reshaped to (N*Ho*Wo, F)::

    dk = cols.T @ dy                      (backward-weights)
    dcols = dy @ k.reshape(-1, F).T       then col2im adds every patch back
                                          onto the padded image (backward-data)
    db = sum of dy over N, Ho, Wo

The transposed convolution is this convolution's adjoint, so it reuses the same
three ops with the roles swapped (see the end of this file): no zero-dilated input.
"""
from __future__ import annotations

from ..xp import array_module
from .registry import op


def _pad(x, g):
    """x zero-padded by the window's paddings (x itself when there are none)."""
    if g.top == g.bottom == g.left == g.right == 0:
        return x
    return array_module(x).pad(x, ((0, 0), (g.top, g.bottom), (g.left, g.right), (0, 0)))


def im2col(xpad, g):
    """Patches of a padded NHWC image: (N, Ho, Wo, kh, kw, C), one strided copy per tap."""
    n, _, _, c = xpad.shape
    cols = array_module(xpad).empty((n, g.ho, g.wo, g.kh, g.kw, c), dtype=xpad.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            cols[:, :, :, i, j, :] = xpad[:, i : i + g.sh * (g.ho - 1) + 1 : g.sh, j : j + g.sw * (g.wo - 1) + 1 : g.sw, :]
    return cols


def col2im(cols, g):
    """Adjoint of im2col: add every patch of ``cols`` (N, Ho, Wo, kh, kw, C) back onto a zero
    padded image (N, H + top + bottom, W + left + right, C)."""
    n, c = cols.shape[0], cols.shape[-1]
    xpad = array_module(cols).zeros((n, *g.padded_shape, c), dtype=cols.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            xpad[:, i : i + g.sh * (g.ho - 1) + 1 : g.sh, j : j + g.sw * (g.wo - 1) + 1 : g.sw, :] += cols[:, :, :, i, j, :]
    return xpad


@op
def conv2d_forward(x, kernel, bias, g):
    """y = conv(x, kernel) + bias.  x (N,H,W,C), kernel (kh,kw,C,F), bias (F,) or None, g a Window -> (N,Ho,Wo,F)."""
    kh, kw, c, f = kernel.shape
    cols = im2col(_pad(x, g), g)
    y = cols.reshape(-1, kh * kw * c) @ kernel.reshape(kh * kw * c, f)
    if bias is not None:
        y += bias
    return y.reshape(x.shape[0], g.ho, g.wo, f)


@op
def conv2d_backward_data(dy, kernel, g, *, bias=None):
    """dx = col2im(dy @ kernel^T), cropped to the unpadded input (+ bias (C,), which the
    transposed convolution's forward adds: backends fold it into the same pass).
    dy (N,Ho,Wo,F) -> (N,H,W,C)."""
    kh, kw, c, f = kernel.shape
    n = dy.shape[0]
    dcols = dy.reshape(-1, f) @ kernel.reshape(kh * kw * c, f).T
    dxpad = col2im(dcols.reshape(n, g.ho, g.wo, kh, kw, c), g)
    dx = dxpad[:, g.top : g.top + g.h, g.left : g.left + g.w, :]
    return dx if bias is None else dx + bias


@op
def conv2d_backward_weights(dy, x, g):
    """dkernel = im2col(x)^T @ dy.  dy (N,Ho,Wo,F), x (N,H,W,C) -> (kh,kw,C,F)."""
    c, f = x.shape[-1], dy.shape[-1]
    cols = im2col(_pad(x, g), g)
    return (cols.reshape(-1, g.kh * g.kw * c).T @ dy.reshape(-1, f)).reshape(g.kh, g.kw, c, f)


@op
def bias_backward(dy):
    """db = sum of dy over every axis but the last (channels).  (..., F) -> (F,)."""
    return dy.reshape(-1, dy.shape[-1]).sum(axis=0)


# --- the transposed convolution is this convolution's adjoint ---------------------------
#
# Conv2DTranspose with kernel K (kh, kw, F, C_in) maps x (N, H, W, C_in) to
# y (N, Ho, Wo, F). It is the adjoint of the ordinary convolution A that maps
# (N, Ho, Wo, F) to (N, H, W, C_in) with the same K, strides and padding, whose Window g
# (geometry.transpose_window) has g.h, g.w = Ho, Wo and g.ho, g.wo = H, W. So the layer
# (scratchgan/layers/conv.py) calls the three ops above with the roles swapped:
#     forward        y  = conv2d_backward_data(x, K, g) + b
#     backward-data  dx = conv2d_forward(dy, K, None, g)
#     backward-wts   dK = conv2d_backward_weights(x, dy, g)
# No transposed-convolution kernels, and no zero-dilated input.
