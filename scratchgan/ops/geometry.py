"""Where a window slides: output sizes and paddings of convolutions and pooling, as Keras
and TensorFlow compute them, gathered once into a :class:`Window` record.

A layer knows its input's height and width when it is built, so it computes its
``Window`` then, once, and hands it to every op call; the ops and the kernels behind
them (NumPy, Numba, CUDA) read its fields and never recompute a padding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError


def pair(value, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; anything else is a ValueError naming ``name``."""
    if isinstance(value, int):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if a < 1 or b < 1:
        raise UsageError(f"{name} must be positive, got {value!r}")
    return a, b


def check_padding(padding: str) -> str:
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise UsageError(f"padding must be 'valid' or 'same', got {padding!r}")
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
            raise UsageError(
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


@dataclass(frozen=True)
class Window:
    """A (kh, kw) window sliding with strides (sh, sw) over an h x w input, giving ho x wo.

    Output pixel (p, q) reads input rows p*sh + i - top and columns q*sw + j - left for
    taps 0 <= i < kh, 0 <= j < kw; indices outside [0, h) x [0, w) are padding.
    ``bottom`` and ``right`` complete the padded size: h + top + bottom >= (ho-1)*sh + kh.
    """

    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ho: int
    wo: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def padded_shape(self) -> tuple[int, int]:
        return self.h + self.top + self.bottom, self.w + self.left + self.right

    def __str__(self):
        """Compact, for tables: ``7x8->4x4 k3x3 s2x2 pad 1,1,0,1`` (top, bottom, left, right)."""
        pads = (self.top, self.bottom, self.left, self.right)
        pad = " pad " + ",".join(map(str, pads)) if any(pads) else ""
        return f"{self.h}x{self.w}->{self.ho}x{self.wo} k{self.kh}x{self.kw} s{self.sh}x{self.sw}{pad}"


def window(input_hw, size, strides, padding) -> Window:
    """The Window of a ``size`` window with ``strides`` and ``padding`` ("valid" or "same")
    over inputs of height and width ``input_hw``."""
    (h, w), (kh, kw), (sh, sw) = input_hw, pair(size, "window size"), pair(strides, "strides")
    padding = check_padding(padding)
    ho, top, bottom = conv_output_length(h, kh, sh, padding)
    wo, left, right = conv_output_length(w, kw, sw, padding)
    return Window(h, w, kh, kw, sh, sw, ho, wo, top, bottom, left, right)


def transpose_window(input_hw, size, strides, padding) -> Window:
    """The Window of the convolution whose adjoint is a transposed convolution over
    ``input_hw``: it maps the transposed convolution's output (Keras's size) back to
    ``input_hw``, so its ``h, w`` are that output and its ``ho, wo`` are ``input_hw``."""
    (h, w), (kh, kw), (sh, sw) = input_hw, pair(size, "kernel_size"), pair(strides, "strides")
    padding = check_padding(padding)
    out_hw = (conv_transpose_output_length(h, kh, sh, padding), conv_transpose_output_length(w, kw, sw, padding))
    g = window(out_hw, (kh, kw), (sh, sw), padding)
    assert (g.ho, g.wo) == (h, w), "Keras's transposed size always inverts the convolution's"
    return g
