"""The template Dense, Conv2D and Conv2DTranspose share: a linear map, a bias, an activation.

    z = linear(x; kernel) + bias,      y = act(z)
    dz = act'(z) * dy                                     (activation_backward)
    dkernel = linear_backward_weights(dz, x),  dbias = sum of dz over all but the last axis
    dx = linear_backward_data(dz; kernel)                 (the adjoint of the linear map;
                                                           skipped when no one needs dx)

A subclass says what its linear map is: ``_kernel_shape``, ``_linear_forward``,
``_linear_backward_weights`` and ``_linear_backward_data``, each one op call.
Derivations: docs/derivations.md ("Dense", "Conv2D", "Conv2DTranspose").
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .activation import activation_backward, activation_forward, check_activation
from .base import Layer, glorot_uniform


class LinearLayer(Layer):
    """A kernel (Glorot-uniform, as Keras), an optional zero-initialised bias, a fused activation."""

    def __init__(self, activation=None, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.activation = check_activation(activation)
        self.use_bias = bool(use_bias)

    #: the kernel axis whose length the bias has (the output features)
    _bias_axis = -1

    def _build(self, input_shape):
        shape = self._kernel_shape(input_shape)
        self._add_param("kernel", glorot_uniform(self.rng, shape, self.dtype))
        if self.use_bias:
            self._add_param("bias", np.zeros(shape[self._bias_axis]))

    def _forward(self, x, training):
        z = self._linear_forward(x)
        y, act_cache = activation_forward(self.activation, z)
        return y, (x, act_cache)

    def _backward(self, dy, cache, need_param_grads):
        dz = activation_backward(self.activation, dy, cache[1])
        if need_param_grads:
            self._add_param_grads(dz, cache[0])
        return self._linear_backward_data(dz)

    def _backward_params(self, dy, cache):
        """The parameter gradients without dx: no backward-data op (a first layer's)."""
        self._add_param_grads(activation_backward(self.activation, dy, cache[1]), cache[0])

    def _add_param_grads(self, dz, x):
        self._accumulate("kernel", self._linear_backward_weights(dz, x))
        if self.use_bias:
            self._accumulate("bias", ops.bias_backward(dz))

    # --- what a subclass defines ----------------------------------------------------
    def _kernel_shape(self, input_shape) -> tuple:
        raise NotImplementedError

    def _linear_forward(self, x):
        """z = linear(x) + bias (one op call)."""
        raise NotImplementedError

    def _linear_backward_weights(self, dz, x):
        raise NotImplementedError

    def _linear_backward_data(self, dz):
        raise NotImplementedError
