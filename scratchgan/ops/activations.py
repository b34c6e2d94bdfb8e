"""Element-wise activations and their derivatives (any shape; dy has the shape of y).

    leaky_relu  y = x if x > 0 else a*x      dx = dy * (1 if x > 0 else a)
    relu        the leaky ReLU with a = 0
    tanh        y = tanh(x)                  dx = dy * (1 - y^2)
    sigmoid     y = 1 / (1 + exp(-x))        dx = dy * y * (1 - y)

The backward of tanh and sigmoid needs only y, so layers cache y, not x.

Derivation: docs/derivations.md, "Activations".
"""
from __future__ import annotations

from ..xp import array_module

from .registry import op


@op
def leaky_relu_forward(x, slope):
    """y = max(x, slope*x) for 0 <= slope <= 1; returns (y, mask) with mask = x > 0."""
    mask = x > 0
    return array_module(x).where(mask, x, x * x.dtype.type(slope)), mask


@op
def leaky_relu_backward(dy, mask, slope):
    """dx = dy where x > 0, slope*dy elsewhere."""
    return array_module(dy).where(mask, dy, dy * dy.dtype.type(slope))


@op
def tanh_forward(x):
    """y = tanh(x)."""
    return array_module(x).tanh(x)


@op
def tanh_backward(dy, y):
    """dx = dy * (1 - y^2)."""
    return dy * (1 - y * y)


@op
def sigmoid_forward(x):
    """Numerically stable 1 / (1 + exp(-x)): exp is only ever taken of a non-positive number."""
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@op
def sigmoid_backward(dy, y):
    """dx = dy * y * (1 - y)."""
    return dy * y * (1 - y)
