"""Layers that only move values around: Reshape and Flatten.

    Reshape(target):  y = x.reshape(N, *target)     dx = dy.reshape(x.shape)
    Flatten():        y = x.reshape(N, -1)          dx = dy.reshape(x.shape)
"""
from __future__ import annotations

import math

from .base import Layer, LayerError


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(s) for s in target_shape)

    def compute_output_shape(self, input_shape):
        if math.prod(input_shape[1:]) != math.prod(self.target_shape):
            raise LayerError(
                f"{self.name}: cannot reshape inputs of shape {input_shape[1:]} "
                f"({math.prod(input_shape[1:])} values) to {self.target_shape} "
                f"({math.prod(self.target_shape)} values)"
            )
        return (input_shape[0], *self.target_shape)

    def _forward(self, x, training):
        return x.reshape(x.shape[0], *self.target_shape), x.shape

    def _backward(self, dy, x_shape, need_param_grads):
        return dy.reshape(x_shape)

    def get_config(self):
        return {"target_shape": self.target_shape}


class Flatten(Layer):
    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))

    def _forward(self, x, training):
        return x.reshape(x.shape[0], -1), x.shape

    def _backward(self, dy, x_shape, need_param_grads):
        return dy.reshape(x_shape)
