"""Output sizes and paddings of convolutions, exactly as Keras/TensorFlow compute them."""
from __future__ import annotations

import math


def pair(value, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; anything else is a ValueError naming ``name``."""
    if isinstance(value, int):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return a, b


def check_padding(padding: str) -> str:
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding


def conv_output_length(length: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(output length, padding before, padding after) of a convolution along one axis.

    valid: out = floor((length - kernel) / stride) + 1, no padding.
    same:  out = ceil(length / stride); total padding = max((out-1)*stride + kernel - length, 0),
           split as TensorFlow does: before = total // 2, after = total - before
           (an odd total puts the extra row/column at the bottom/right).
    """
    if padding == "valid":
        if length < kernel:
            raise ValueError(
                f"input length {length} is smaller than the kernel ({kernel}) with padding 'valid'"
            )
        return (length - kernel) // stride + 1, 0, 0
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return out, total // 2, total - total // 2


def conv_transpose_output_length(length: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of Keras's Conv2DTranspose (output_padding=None) along one axis.

    valid: length * stride + max(kernel - stride, 0);  same: length * stride.
    """
    if padding == "valid":
        return length * stride + max(kernel - stride, 0)
    return length * stride


def window_geometry(x_shape, window, strides, padding):
    """(Ho, Wo, (top, bottom), (left, right)) of a (kh, kw) window sliding over an NHWC
    input of shape ``x_shape``: convolutions and pooling alike."""
    _, h, w, _ = x_shape
    ho, top, bottom = conv_output_length(h, window[0], strides[0], padding)
    wo, left, right = conv_output_length(w, window[1], strides[1], padding)
    return ho, wo, (top, bottom), (left, right)
