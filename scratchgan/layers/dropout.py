"""Dropout(rate): inverted dropout, active only in training mode.

    training:   keep ~ Bernoulli(1 - rate),  y = x * keep / (1 - rate),  dx = dy * keep / (1 - rate)
    inference:  y = x,  dx = dy

``rate`` is the probability of dropping a value, as in Keras. The mask is drawn from
the layer's own numpy Generator ``layer.rng`` (seed it with ``seed=`` or by
assigning ``layer.rng``), so a run is reproducible and a gradient check can replay it.

In data-parallel training each rank holds some rows of the global batch; the forward
is then given this rank's ``share`` (scratchgan.distributed.Share), draws the masks of
the whole batch, as one process would, and keeps its own rows.

The ops: scratchgan/ops/dropout.py. Derivation: docs/derivations.md, "Dropout".
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .base import Layer, LayerError


class Dropout(Layer):
    draws_per_row = True  # Layer.forward hands it the batch share

    def __init__(self, rate: float, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise LayerError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.rng = np.random.default_rng(seed)

    def _forward(self, x, training, share=None):
        if not training or self.rate == 0:
            return x, None
        rng = self.rng if share is None else share.generator(self.rng)
        y, keep, scale = ops.dropout_forward(x, self.rate, rng)
        return y, (keep, scale)

    def _backward(self, dy, cache, need_param_grads):
        if cache is None:
            return dy
        return ops.dropout_backward(dy, *cache)

    def get_config(self):
        return {"rate": self.rate}
