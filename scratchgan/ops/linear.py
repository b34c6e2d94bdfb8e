"""Fully connected layer ops.  x (N, in), kernel (in, units), bias (units,) -> y (N, units).

    forward           y  = x @ W + b
    backward-data     dx = dy @ W^T
    backward-weights  dW = x^T @ dy        (db: ops.bias_backward)

Derivation: docs/derivations.md, "Dense".
"""
from __future__ import annotations

from .registry import op


@op
def dense_forward(x, kernel, bias):
    """y = x @ kernel + bias (bias may be None)."""
    y = x @ kernel
    if bias is not None:
        y += bias
    return y


@op
def dense_backward_data(dy, kernel):
    """dx = dy @ kernel^T."""
    return dy @ kernel.T


@op
def dense_backward_weights(dy, x):
    """dkernel = x^T @ dy."""
    return x.T @ dy
