"""Conv2D and Conv2DTranspose, NHWC, Keras layouts and output sizes.

Conv2D: x (N, H, W, C), kernel (kh, kw, C, F), bias (F,), y (N, Ho, Wo, F)::

    z[n,p,q,f] = b[f] + sum_{i,j,c} xpad[n, p*sh+i, q*sw+j, c] * k[i,j,c,f];   y = act(z)
    dz = act'(z) * dy
    dx = col2im(dz @ k^T)  (cropped),   dk = im2col(x)^T @ dz,   db = sum dz

"same" pads like TensorFlow: Ho = ceil(H / sh), and an odd total padding puts the
extra row/column at the bottom/right. "valid": Ho = floor((H - kh) / sh) + 1.

Conv2DTranspose: x (N, H, W, C_in), kernel (kh, kw, F, C_in), y (N, Ho, Wo, F), the
adjoint of the Conv2D that maps (Ho, Wo, F) to (H, W, C_in) with the same kernel::

    z  = conv2d_backward_data(x, k) + b                     y = act(z)
    dx = conv2d_forward(dz, k),   dk = im2col(dz)^T @ x,    db = sum dz

Ho = H * sh ("same") or H * sh + max(kh - sh, 0) ("valid"), as Keras computes it.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ops.geometry import check_padding, conv_output_length, pair
from .activation import activation_backward, activation_forward, check_activation
from .base import Layer, LayerError, glorot_uniform


class _ConvBase(Layer):
    input_ndim = 4

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise LayerError(f"{type(self).__name__}: filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = check_padding(padding)
        self.activation = check_activation(activation)
        self.use_bias = bool(use_bias)

    def _build(self, input_shape):
        shape = self._kernel_shape(input_shape[-1])
        self._add_param("kernel", glorot_uniform(self.rng, shape, self.dtype))
        if self.use_bias:
            self._add_param("bias", np.zeros(self.filters))

    def _forward(self, x, training):
        z = self._linear_forward(x)
        y, act_cache = activation_forward(self.activation, z)
        self._store_cache((x, act_cache), y.shape)
        return y

    def _backward(self, dy, cache, need_param_grads):
        x, act_cache = cache
        dz = activation_backward(self.activation, dy, act_cache)
        if need_param_grads:
            self._accumulate("kernel", self._weights_backward(dz, x))
            if self.use_bias:
                self._accumulate("bias", ops.bias_backward(dz))
        return self._data_backward(dz)

    def get_config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }


class Conv2D(_ConvBase):
    """2-D convolution (cross-correlation, as in every DL library)."""

    def _kernel_shape(self, channels):
        return (*self.kernel_size, channels, self.filters)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        try:
            ho = conv_output_length(h, self.kernel_size[0], self.strides[0], self.padding)[0]
            wo = conv_output_length(w, self.kernel_size[1], self.strides[1], self.padding)[0]
        except ValueError as err:
            raise LayerError(f"{self.name}: input {input_shape[1:]}: {err}") from None
        return (n, ho, wo, self.filters)

    def _linear_forward(self, x):
        return ops.conv2d_forward(x, self.params["kernel"], self.params.get("bias"), self.strides, self.padding)

    def _weights_backward(self, dz, x):
        return ops.conv2d_backward_weights(dz, x, self.params["kernel"].shape, self.strides, self.padding)

    def _data_backward(self, dz):
        return ops.conv2d_backward_data(dz, self.params["kernel"], self._x_shape(dz), self.strides, self.padding)

    def _x_shape(self, dz):
        return (dz.shape[0], *self.input_shape[1:])


class Conv2DTranspose(_ConvBase):
    """Transposed 2-D convolution ("deconvolution"): Conv2D's adjoint."""

    def _kernel_shape(self, channels):
        return (*self.kernel_size, self.filters, channels)

    def compute_output_shape(self, input_shape):
        shape = ops.conv2d_transpose_output_shape(
            (0, *input_shape[1:]), self._kernel_shape(input_shape[-1]), self.strides, self.padding
        )
        return (input_shape[0], *shape[1:])

    def _linear_forward(self, x):
        return ops.conv2d_transpose_forward(x, self.params["kernel"], self.params.get("bias"), self.strides, self.padding)

    def _weights_backward(self, dz, x):
        return ops.conv2d_transpose_backward_weights(dz, x, self.params["kernel"].shape, self.strides, self.padding)

    def _data_backward(self, dz):
        return ops.conv2d_transpose_backward_data(dz, self.params["kernel"], self.strides, self.padding)
