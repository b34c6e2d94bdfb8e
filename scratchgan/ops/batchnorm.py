"""Batch normalisation over the last axis (channels), for (N, C) and (N, H, W, C) inputs.

Training (m = number of values per channel, statistics over every axis but the last)::

    mu = mean(x),  var = mean((x - mu)^2),  inv_std = 1 / sqrt(var + eps)
    xhat = (x - mu) * inv_std,  y = gamma * xhat + beta

Backward (dxhat = dy * gamma)::

    dgamma = sum(dy * xhat),  dbeta = sum(dy)
    dx = inv_std / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))

Inference uses the moving statistics instead, so it is an affine map per channel:
    y = gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta,  dx = dy * gamma / sqrt(moving_var + eps).

The moving averages follow Keras: moving = momentum * moving + (1 - momentum) * batch
statistic, with the biased batch variance (as Keras 3 does).

Derivation: docs/derivations.md, "BatchNormalization".
"""
from __future__ import annotations

from ..errors import UsageError
from ..xp import array_module
from .registry import op


def _channel_axes(x):
    return tuple(range(x.ndim - 1))


@op
def batchnorm_forward_train(x, gamma, beta, eps):
    """Returns (y, xhat, inv_std, mean, var); mean and var are the batch statistics (C,)."""
    if x.size == 0:  # NumPy's mean of nothing is NaN, with a warning: refuse instead
        raise UsageError(f"batch normalisation in training mode needs at least one value per channel, "
                         f"got an input of shape {tuple(x.shape)}")
    axes = _channel_axes(x)
    mean = x.mean(axis=axes)
    centered = x - mean
    var = (centered * centered).mean(axis=axes)
    inv_std = 1 / array_module(x).sqrt(var + x.dtype.type(eps))
    xhat = centered * inv_std
    return xhat * gamma + beta, xhat, inv_std, mean, var


@op
def batchnorm_backward_train(dy, xhat, inv_std, gamma):
    """Returns (dx, dgamma, dbeta) for the training-mode forward."""
    axes = _channel_axes(dy)
    m = dy.size // dy.shape[-1]
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    # sum(dxhat) = gamma * dbeta and sum(dxhat * xhat) = gamma * dgamma
    dx = (gamma * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


@op
def batchnorm_forward_infer(x, gamma, beta, moving_mean, moving_var, eps):
    """Returns (y, xhat, scale) with scale = gamma / sqrt(moving_var + eps)."""
    inv_std = 1 / array_module(x).sqrt(moving_var + x.dtype.type(eps))
    xhat = (x - moving_mean) * inv_std
    return xhat * gamma + beta, xhat, gamma * inv_std


@op
def batchnorm_backward_infer(dy, xhat, scale):
    """Returns (dx, dgamma, dbeta) for the inference-mode forward."""
    axes = _channel_axes(dy)
    return dy * scale, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
