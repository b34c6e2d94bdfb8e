"""Fused in-place optimizer updates: one parallel pass over a parameter and its state
(NumPy needs six to ten passes and temporaries). Rules in scratchgan/ops/optim.py:

    adam     m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  p -= alpha * m / (sqrt(v) + eps)
    sgd      u = mu*u - lr*g;  p += u  (Nesterov: p += mu*u - lr*g);  without momentum p -= lr*g
    rmsprop  v = rho*v + (1-rho)*g^2;  p -= lr * g / sqrt(v + eps)

Every constant arrives in the parameter's dtype, 1-b1 included, computed by the launcher:
Numba types a literal such as ``1 - b1`` inside a kernel as float64, and a float32 update
then ran in float64 and unvectorised (784x128 Adam: 0.15-0.16 against 0.05 ms on one
core, examples/memory_bound_ops.py). tests/test_kernels.py checks that the float32
updates equal the float32 reference bit for bit, which a float64 step would not.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .checks import same_layout
from .threads import threads_for


@njit(parallel=True, cache=True, fastmath=False)
def _adam(p, g, m, v, alpha, b1, c1, b2, c2, eps):
    for i in prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] -= alpha * mi / (math.sqrt(vi) + eps)


@njit(parallel=True, cache=True)
def _sgd_momentum(p, g, u, lr, mu, nesterov):
    for i in prange(p.size):
        ui = mu * u[i] - lr * g[i]
        u[i] = ui
        p[i] += mu * ui - lr * g[i] if nesterov else ui


@njit(parallel=True, cache=True)
def _sgd_plain(p, g, lr):
    for i in prange(p.size):
        p[i] -= lr * g[i]


@njit(parallel=True, cache=True)
def _rmsprop(p, g, v, lr, rho, c, eps):
    for i in prange(p.size):
        gi = g[i]
        vi = rho * v[i] + c * (gi * gi)
        v[i] = vi
        p[i] -= lr * gi / math.sqrt(vi + eps)


def _flat(a):
    """A 1-D view of a C-contiguous array (the update must land in the caller's array)."""
    if not a.flags.c_contiguous:
        raise ValueError("fused optimizer updates need C-contiguous parameters and state")
    return a.reshape(-1)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, t):
    same_layout("adam_update", param, m=m, v=v)
    if np.shape(grad) != param.shape:
        raise ValueError(f"adam_update: gradient {np.shape(grad)}, parameter {param.shape}")
    f = param.dtype.type
    alpha = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    threads_for(param.size)
    _adam(_flat(param), np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1), _flat(m), _flat(v),
          f(alpha), f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(eps))


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    same_layout("sgd_update", param, **({} if velocity is None else {"velocity": velocity}))
    if np.shape(grad) != param.shape:
        raise ValueError(f"sgd_update: gradient {np.shape(grad)}, parameter {param.shape}")
    f = param.dtype.type
    g = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    if velocity is None:
        threads_for(param.size)
        _sgd_plain(_flat(param), g, f(lr))
    else:
        threads_for(param.size)
        _sgd_momentum(_flat(param), g, _flat(velocity), f(lr), f(momentum), bool(nesterov))


def rmsprop_update(param, grad, v, lr, rho, eps):
    same_layout("rmsprop_update", param, v=v)
    if np.shape(grad) != param.shape:
        raise ValueError(f"rmsprop_update: gradient {np.shape(grad)}, parameter {param.shape}")
    f = param.dtype.type
    threads_for(param.size)
    _rmsprop(_flat(param), np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1), _flat(v), f(lr), f(rho), f(1 - rho), f(eps))


KERNELS = {"adam_update": adam_update, "sgd_update": sgd_update, "rmsprop_update": rmsprop_update}
