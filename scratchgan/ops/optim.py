"""In-place parameter updates, one call per parameter tensor (fusable by kernels).

Keras's rules, written out (g is the gradient, t the step number starting at 1):

    adam     m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
             p -= lr * sqrt(1-b2^t) / (1-b1^t) * m / (sqrt(v) + eps)
    sgd      without momentum: p -= lr*g
             with momentum:    u = mu*u - lr*g;  p += u              (classical)
                               u = mu*u - lr*g;  p += mu*u - lr*g    (Nesterov)
    rmsprop  v = rho*v + (1-rho)*g^2;  p -= lr * g / sqrt(v + eps)

Derivation: docs/derivations.md, "Optimizers".
"""
from __future__ import annotations

import math

from ..xp import array_module

from .registry import op


@op
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, t):
    """Update param, m and v in place (t >= 1 is this step's number)."""
    alpha = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * (grad * grad)
    param -= param.dtype.type(alpha) * m / (array_module(v).sqrt(v) + param.dtype.type(eps))


@op
def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    """Update param (and velocity, unless it is None) in place."""
    if velocity is None:
        param -= param.dtype.type(lr) * grad
        return
    velocity *= momentum
    velocity -= param.dtype.type(lr) * grad
    if nesterov:
        param += param.dtype.type(momentum) * velocity - param.dtype.type(lr) * grad
    else:
        param += velocity


@op
def rmsprop_update(param, grad, v, lr, rho, eps):
    """Update param and v in place."""
    v *= rho
    v += (1 - rho) * (grad * grad)
    param -= param.dtype.type(lr) * grad / array_module(v).sqrt(v + param.dtype.type(eps))
