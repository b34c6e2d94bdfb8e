"""MaxPooling2D and UpSampling2D (nearest), NHWC.

MaxPooling2D(pool_size=2, strides=None -> pool_size, padding="valid"):
    y[n,p,q,c] = max over the window at (p*sh, q*sw) of x;  dx routes each dy to the
    window's (first) maximum. Ho = floor((H - ph) / sh) + 1 ("valid"), ceil(H / sh) ("same").

UpSampling2D(size=2):
    y[n,p,q,c] = x[n, p // sh, q // sw, c];  dx = sum of dy over each sh x sw block.

The ops: scratchgan/ops/pooling.py. Derivation: docs/derivations.md, "MaxPooling2D and UpSampling2D".
"""
from __future__ import annotations

from .. import ops
from ..ops.geometry import check_padding, pair, window
from .base import Layer, LayerError


class MaxPooling2D(Layer):
    input_ndim = 4

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = check_padding(padding)
        if max(self.pool_size) > 127:
            raise LayerError(f"{self.name}: pool_size above 127 is not supported, got {self.pool_size}")
        self.window = None  # the Window of inputs of the built size, set by _build

    def _build(self, input_shape):
        self.window = window(input_shape[1:3], self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.window.ho, self.window.wo, input_shape[-1])

    def _forward(self, x, training):
        return ops.maxpool_forward(x, self.window)  # (y, argmax)

    def _backward(self, dy, argmax, need_param_grads):
        return ops.maxpool_backward(dy, argmax, self.window)

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}


class UpSampling2D(Layer):
    input_ndim = 4

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = pair(size, "size")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h * self.size[0], w * self.size[1], c)

    def _forward(self, x, training):
        return ops.upsample_nearest_forward(x, self.size), None

    def _backward(self, dy, cache, need_param_grads):
        return ops.upsample_nearest_backward(dy, self.size)

    def get_config(self):
        return {"size": self.size}
