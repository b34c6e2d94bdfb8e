"""Inverted dropout.  rate = probability of dropping an element (Keras's meaning).

    keep ~ Bernoulli(1 - rate) elementwise,  scale = 1 / (1 - rate)
    y  = x * keep * scale
    dx = dy * keep * scale

Derivation: docs/derivations.md, "Dropout".
"""
from __future__ import annotations

import numpy as np

from ..xp import like
from .registry import op


@op
def dropout_forward(x, rate, rng):
    """Returns (y, keep, scale); keep is a uint8 mask drawn from the numpy Generator ``rng``."""
    keep = like((rng.random(x.shape, dtype=np.float32) >= rate).astype(np.uint8), x)
    scale = x.dtype.type(1.0 / (1.0 - rate))
    return x * keep * scale, keep, scale


@op
def dropout_backward(dy, keep, scale):
    """dx = dy * keep * scale: the kept values' gradients, scaled like the forward."""
    return dy * keep * scale
