"""Dense: a fully connected layer, Keras layout.

Shapes: x (N, in), kernel (in, units), bias (units,), y (N, units).

    z  = x @ kernel + bias,      y = activation(z)
    dz = activation'(z) * dy
    dx = dz @ kernel^T,  dkernel = x^T @ dz,  dbias = sum_n dz
"""
from __future__ import annotations

from .. import ops
from .activation import activation_backward, activation_forward, check_activation
from .base import Layer, LayerError, glorot_uniform

import numpy as np


class Dense(Layer):
    input_ndim = 2

    def __init__(self, units: int, activation=None, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise LayerError(f"Dense: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = check_activation(activation)
        self.use_bias = bool(use_bias)

    def _build(self, input_shape):
        fan_in = input_shape[-1]
        self._add_param("kernel", glorot_uniform(self.rng, (fan_in, self.units), self.dtype))
        if self.use_bias:
            self._add_param("bias", np.zeros(self.units))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def _forward(self, x, training):
        z = ops.dense_forward(x, self.params["kernel"], self.params.get("bias"))
        y, act_cache = activation_forward(self.activation, z)
        self._store_cache((x, act_cache), y.shape)
        return y

    def _backward(self, dy, cache, need_param_grads):
        x, act_cache = cache
        dz = activation_backward(self.activation, dy, act_cache)
        if need_param_grads:
            self._accumulate("kernel", ops.dense_backward_weights(dz, x))
            if self.use_bias:
                self._accumulate("bias", ops.bias_backward(dz))
        return ops.dense_backward_data(dz, self.params["kernel"])

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias}
