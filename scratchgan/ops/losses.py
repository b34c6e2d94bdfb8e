"""Binary cross-entropy, on probabilities (as Keras) and on logits (fused, stable).

On probabilities p with targets t (any values in [0, 1]: soft or noisy labels work),
mean over all n elements, clipping as Keras does (eps = 1e-7)::

    pc = clip(p, eps, 1 - eps)
    L  = -1/n * sum(t * log(pc) + (1 - t) * log(1 - pc))
    dL/dp = 1/n * (pc - t) / (pc * (1 - pc))     where eps < p < 1 - eps, else 0 (the clip)

On logits z (sigmoid folded in)::

    L = 1/n * sum(max(z, 0) - z * t + log(1 + exp(-|z|)))
    dL/dz = 1/n * (sigmoid(z) - t)
"""
from __future__ import annotations

import numpy as np

from .activations import sigmoid_forward
from .registry import op

EPSILON = 1e-7


@op
def bce_forward(p, t, eps=EPSILON):
    """Returns (loss as a Python float, clipped probabilities)."""
    pc = np.clip(p, eps, 1 - eps)
    loss = -np.mean(t * np.log(pc) + (1 - t) * np.log(1 - pc))
    return float(loss), pc


@op
def bce_backward(p, pc, t, eps=EPSILON):
    """dL/dp, zero where p was clipped."""
    inside = (p > eps) & (p < 1 - eps)
    return np.where(inside, (pc - t) / (pc * (1 - pc)), 0).astype(p.dtype, copy=False) / p.size


@op
def bce_logits_forward(z, t):
    """Returns (loss as a Python float, sigmoid(z))."""
    loss = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    return float(loss), sigmoid_forward(z)


@op
def bce_logits_backward(sig, t):
    """dL/dz = (sigmoid(z) - t) / n."""
    return (sig - t) / sig.size
