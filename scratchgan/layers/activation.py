"""Activation layers: Activation("tanh" | "sigmoid" | "relu" | "linear"), ReLU, LeakyReLU.

    tanh      y = tanh(x)              dx = dy * (1 - y^2)          (caches y)
    sigmoid   y = 1 / (1 + e^-x)       dx = dy * y * (1 - y)        (caches y)
    relu      y = max(x, 0)            dx = dy * [x > 0]            (caches the mask)
    leaky     y = x or a*x             dx = dy or a*dy              (caches the mask)
    linear    y = x                    dx = dy

The same functions serve the ``activation=`` argument of Dense and the conv layers.
Any shape; the output has the input's shape.

The ops: scratchgan/ops/activations.py. Derivation: docs/derivations.md, "Activations".
"""
from __future__ import annotations

from .. import ops
from .base import Layer, LayerError

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


def check_activation(name):
    name = "linear" if name is None else str(name).lower()
    if name not in ACTIVATIONS:
        raise LayerError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)} or None")
    return name


def activation_forward(name, z):
    """(y, cache) for activation ``name`` applied to z."""
    if name == "linear":
        return z, None
    if name == "relu":
        return ops.leaky_relu_forward(z, 0.0)
    if name == "tanh":
        y = ops.tanh_forward(z)
        return y, y
    y = ops.sigmoid_forward(z)
    return y, y


def activation_backward(name, dy, cache):
    """dz given dy and the cache of activation_forward."""
    if name == "linear":
        return dy
    if name == "relu":
        return ops.leaky_relu_backward(dy, cache, 0.0)
    if name == "tanh":
        return ops.tanh_backward(dy, cache)
    return ops.sigmoid_backward(dy, cache)


class Activation(Layer):
    """Element-wise activation by name: "tanh", "sigmoid", "relu" or "linear"."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = check_activation(activation)
        if "name" not in kwargs:
            self.name = self.activation

    def _forward(self, x, training):
        return activation_forward(self.activation, x)

    def _backward(self, dy, cache, need_param_grads):
        return activation_backward(self.activation, dy, cache)

    def get_config(self):
        return {"activation": self.activation}


class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise (Keras's default slope: 0.3)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= negative_slope <= 1:
            raise LayerError(f"negative_slope must be in [0, 1], got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def _forward(self, x, training):
        return ops.leaky_relu_forward(x, self.negative_slope)  # (y, mask)

    def _backward(self, dy, mask, need_param_grads):
        return ops.leaky_relu_backward(dy, mask, self.negative_slope)

    def get_config(self):
        return {"negative_slope": self.negative_slope}


class ReLU(LeakyReLU):
    """y = max(x, 0)."""

    def __init__(self, **kwargs):
        super().__init__(negative_slope=0.0, **kwargs)

    def get_config(self):
        return {}
