"""Dense: a fully connected layer, Keras layout.

Shapes: x (N, in), kernel (in, units), bias (units,), y (N, units).

    z  = x @ kernel + bias,      y = activation(z)
    dz = activation'(z) * dy
    dx = dz @ kernel^T,  dkernel = x^T @ dz,  dbias = sum_n dz

The ops: scratchgan/ops/linear.py. Derivation: docs/derivations.md, "Dense".
"""
from __future__ import annotations

from .. import ops
from .base import LayerError
from .linear import LinearLayer


class Dense(LinearLayer):
    input_ndim = 2

    def __init__(self, units: int, activation=None, use_bias: bool = True, **kwargs):
        super().__init__(activation=activation, use_bias=use_bias, **kwargs)
        if int(units) < 1:
            raise LayerError(f"Dense: units must be a positive integer, got {units!r}")
        self.units = int(units)

    def _kernel_shape(self, input_shape):
        return (input_shape[-1], self.units)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def _linear_forward(self, x):
        return ops.dense_forward(x, self.params["kernel"], self.params.get("bias"))

    def _linear_backward_weights(self, dz, x):
        return ops.dense_backward_weights(dz, x)

    def _linear_backward_data(self, dz):
        return ops.dense_backward_data(dz, self.params["kernel"])

    def get_config(self):
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias}
