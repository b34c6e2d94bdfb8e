"""2-D convolution (NHWC) as im2col + one GEMM, and its two backward passes.

Shapes: x (N, H, W, C), kernel (kh, kw, C, F), bias (F,), y (N, Ho, Wo, F).

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
three ops with the roles swapped (see conv2d_transpose_*): no zero-dilated input.
"""
from __future__ import annotations

from ..xp import array_module

from .geometry import conv_transpose_output_length, window_geometry
from .registry import op


def _pad(x, pad_h, pad_w):
    if pad_h == (0, 0) and pad_w == (0, 0):
        return x
    return array_module(x).pad(x, ((0, 0), pad_h, pad_w, (0, 0)))


def im2col(xpad, kh, kw, strides, ho, wo):
    """Patches of a padded NHWC image: (N, Ho, Wo, kh, kw, C), one strided copy per tap."""
    n, _, _, c = xpad.shape
    sh, sw = strides
    cols = array_module(xpad).empty((n, ho, wo, kh, kw, c), dtype=xpad.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xpad[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
    return cols


def col2im(cols, padded_shape, strides):
    """Adjoint of im2col: add every patch of ``cols`` (N, Ho, Wo, kh, kw, C) back onto a zero image."""
    _, ho, wo, kh, kw, _ = cols.shape
    sh, sw = strides
    xpad = array_module(cols).zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :] += cols[:, :, :, i, j, :]
    return xpad


@op
def conv2d_forward(x, kernel, bias, strides, padding):
    """y = conv(x, kernel) + bias.  x (N,H,W,C), kernel (kh,kw,C,F), bias (F,) or None -> (N,Ho,Wo,F)."""
    kh, kw, c, f = kernel.shape
    ho, wo, pad_h, pad_w = window_geometry(x.shape, (kh, kw), strides, padding)
    cols = im2col(_pad(x, pad_h, pad_w), kh, kw, strides, ho, wo)
    y = cols.reshape(-1, kh * kw * c) @ kernel.reshape(kh * kw * c, f)
    if bias is not None:
        y += bias
    return y.reshape(x.shape[0], ho, wo, f)


@op
def conv2d_backward_data(dy, kernel, x_shape, strides, padding):
    """dx = col2im(dy @ kernel^T), cropped to the unpadded input.  dy (N,Ho,Wo,F) -> (N,H,W,C)."""
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x_shape
    ho, wo, (top, bottom), (left, right) = window_geometry(x_shape, (kh, kw), strides, padding)
    dcols = dy.reshape(-1, f) @ kernel.reshape(kh * kw * c, f).T
    padded_shape = (n, h + top + bottom, w + left + right, c)
    dxpad = col2im(dcols.reshape(n, ho, wo, kh, kw, c), padded_shape, strides)
    return dxpad[:, top : top + h, left : left + w, :]


@op
def conv2d_backward_weights(dy, x, kernel_shape, strides, padding):
    """dkernel = im2col(x)^T @ dy.  dy (N,Ho,Wo,F), x (N,H,W,C) -> (kh,kw,C,F)."""
    kh, kw, c, f = kernel_shape
    ho, wo, pad_h, pad_w = window_geometry(x.shape, (kh, kw), strides, padding)
    cols = im2col(_pad(x, pad_h, pad_w), kh, kw, strides, ho, wo)
    return (cols.reshape(-1, kh * kw * c).T @ dy.reshape(-1, f)).reshape(kernel_shape)


@op
def bias_backward(dy):
    """db = sum of dy over every axis but the last (channels).  (..., F) -> (F,)."""
    return dy.reshape(-1, dy.shape[-1]).sum(axis=0)


# --- the transposed convolution, as the adjoint of conv2d --------------------------------
#
# Conv2DTranspose with kernel K (kh, kw, F, C_in) maps x (N, H, W, C_in) to
# y (N, Ho, Wo, F). It is the backward-data pass of the ordinary convolution that
# maps (N, Ho, Wo, F) to (N, H, W, C_in) with the same K, strides and padding:
#     forward        y  = conv2d_backward_data(x, K) + b
#     backward-data  dx = conv2d_forward(dy, K)               (no bias)
#     backward-wts   dK = conv2d_backward_weights(x, dy)      (the roles of x and dy swap)


def conv2d_transpose_output_shape(x_shape, kernel_shape, strides, padding):
    """(N, Ho, Wo, F) of a transposed convolution, as Keras computes it."""
    n, h, w, _ = x_shape
    kh, kw, f, _ = kernel_shape
    sh, sw = strides
    return (
        n,
        conv_transpose_output_length(h, kh, sh, padding),
        conv_transpose_output_length(w, kw, sw, padding),
        f,
    )


def conv2d_transpose_forward(x, kernel, bias, strides, padding):
    """y = conv2d_backward_data(x, kernel) + bias.  x (N,H,W,C_in), kernel (kh,kw,F,C_in) -> (N,Ho,Wo,F)."""
    y_shape = conv2d_transpose_output_shape(x.shape, kernel.shape, strides, padding)
    y = conv2d_backward_data(x, kernel, y_shape, strides, padding)
    if bias is not None:
        y += bias
    return y


def conv2d_transpose_backward_data(dy, kernel, strides, padding):
    """dx = conv2d_forward(dy, kernel).  dy (N,Ho,Wo,F) -> (N,H,W,C_in)."""
    return conv2d_forward(dy, kernel, None, strides, padding)


def conv2d_transpose_backward_weights(dy, x, kernel_shape, strides, padding):
    """dkernel = im2col(dy)^T @ x.  -> (kh,kw,F,C_in)."""
    return conv2d_backward_weights(x, dy, kernel_shape, strides, padding)
