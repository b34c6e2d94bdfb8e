"""Binary cross-entropy, on probabilities (as Keras) and on logits (fused, stable).

On probabilities p with targets t (any values in [0, 1]: soft or noisy labels work),
mean over all n elements, clipping as Keras does (eps = 1e-7)::

    pc = clip(p, eps, 1 - eps)
    L  = -1/n * sum(t * log(pc) + (1 - t) * log(1 - pc))
    dL/dp = 1/n * (pc - t) / (pc * (1 - pc))     where eps < p < 1 - eps, else 0 (the clip)

On logits z (sigmoid folded in)::

    L = 1/n * sum(max(z, 0) - z * t + log(1 + exp(-|z|)))
    dL/dz = 1/n * (sigmoid(z) - t)

Derivation: docs/derivations.md, "Binary cross-entropy".
"""
from __future__ import annotations

from ..xp import array_module

from .activations import sigmoid_forward
from .registry import op

EPSILON = 1e-7


@op
def bce_forward(p, t, eps=EPSILON):
    """Returns (loss, clipped probabilities). The loss is a scalar where p lives (a 0-d CuPy
    array on a GPU: reading it is a device-to-host sync, left to the caller)."""
    xp = array_module(p)
    pc = xp.clip(p, eps, 1 - eps)
    loss = -xp.mean(t * xp.log(pc) + (1 - t) * xp.log(1 - pc))
    return loss, pc


@op
def bce_backward(p, pc, t, eps=EPSILON):
    """dL/dp, zero where p was clipped."""
    inside = (p > eps) & (p < 1 - eps)
    return array_module(p).where(inside, (pc - t) / (pc * (1 - pc)), 0).astype(p.dtype, copy=False) / p.size


@op
def bce_logits_forward(z, t):
    """Returns (loss, sigmoid(z)); the loss a scalar where z lives, as bce_forward's."""
    xp = array_module(z)
    loss = xp.mean(xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z))))
    return loss, sigmoid_forward(z)


@op
def bce_logits_backward(sig, t):
    """dL/dz = (sigmoid(z) - t) / n."""
    return (sig - t) / sig.size
