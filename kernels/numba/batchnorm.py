"""Batch-norm kernels over the last axis (channels); x viewed as (m, C) rows.

Training forward: one read of x for the per-channel sums of u = x - shift and u^2
(reductions.channel_sums, float64 in the end), with shift = the first row, so
mean = shift + sum(u)/m and var = sum(u^2)/m - (sum(u)/m)^2 do not cancel;
one write pass for y and xhat.
Training backward: one pass for dbeta = sum(dy), dgamma = sum(dy * xhat); one pass for
    dx = gamma * inv_std / m * (m * dy - dbeta - xhat * dgamma).
Inference is a per-channel affine map, one pass each way.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import pool
from .checks import channel_vectors, same_shape
from .reductions import channel_sums, row_blocks
from .threads import threads_for

@njit(parallel=True, cache=True)
def _normalize(x, mean, inv_std, gamma, beta, y, xhat):
    m, c = x.shape
    for r in prange(m):
        for ch in range(c):
            h = (x[r, ch] - mean[ch]) * inv_std[ch]
            xhat[r, ch] = h
            y[r, ch] = h * gamma[ch] + beta[ch]


@njit(parallel=True, cache=True)
def _train_dx(dy, xhat, scale, dbeta, dgamma, m_rows, dx):
    m, c = dy.shape
    for r in prange(m):
        for ch in range(c):
            dx[r, ch] = scale[ch] * (m_rows * dy[r, ch] - dbeta[ch] - xhat[r, ch] * dgamma[ch])


@njit(parallel=True, cache=True)
def _scale_rows(dy, scale, dx):
    m, c = dy.shape
    for r in prange(m):
        for ch in range(c):
            dx[r, ch] = dy[r, ch] * scale[ch]


def _rows(a):
    """a as (rows, channels); also sets the thread count for the kernels on it."""
    threads_for(a.size)
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def batchnorm_forward_train(x, gamma, beta, eps):
    if x.size == 0:  # there is no first row to shift by
        raise ValueError(f"batch normalisation in training mode needs at least one value per channel, "
                         f"got an input of shape {tuple(x.shape)}")
    channel_vectors("batchnorm_forward_train", x.shape[-1], gamma=gamma, beta=beta)
    x2 = _rows(x)
    m = x2.shape[0]
    # one pass of shifted sums, float64 in the end (shift = the first row, a sample of each
    # channel, so no cancellation): mean = shift + S1/m, var = S2/m - (S1/m)^2
    shift = x2[0].copy()
    s1, s2 = channel_sums(x2, shift, x2, shift, row_blocks(m))
    mean = (shift + s1 / m).astype(x.dtype)
    var = np.maximum(s2 / m - (s1 / m) ** 2, 0).astype(x.dtype)
    inv_std = (1 / np.sqrt(var + x.dtype.type(eps))).astype(x.dtype)
    y = pool.empty(x2.shape, x2.dtype)
    xhat = pool.empty(x2.shape, x2.dtype)
    _normalize(x2, mean, inv_std, gamma, beta, y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), inv_std, mean, var


def batchnorm_backward_train(dy, xhat, inv_std, gamma):
    same_shape("batchnorm_backward_train", dy.shape, xhat=xhat)
    channel_vectors("batchnorm_backward_train", dy.shape[-1], inv_std=inv_std, gamma=gamma)
    dy2, xhat2 = _rows(dy), _rows(xhat)
    m = dy2.shape[0]
    zero = np.zeros(dy2.shape[1], dy2.dtype)
    dbeta, dgamma = channel_sums(dy2, zero, xhat2, zero, row_blocks(dy2.shape[0]))
    dbeta, dgamma = dbeta.astype(dy.dtype), dgamma.astype(dy.dtype)
    dx = pool.empty(dy2.shape, dy2.dtype)
    _train_dx(dy2, xhat2, (gamma * inv_std / m).astype(dy.dtype), dbeta, dgamma, dy.dtype.type(m), dx)
    return dx.reshape(dy.shape), dgamma, dbeta


def batchnorm_forward_infer(x, gamma, beta, moving_mean, moving_var, eps):
    channel_vectors("batchnorm_forward_infer", x.shape[-1], gamma=gamma, beta=beta,
                    moving_mean=moving_mean, moving_var=moving_var)
    x2 = _rows(x)
    inv_std = (1 / np.sqrt(moving_var + x.dtype.type(eps))).astype(x.dtype)
    y = pool.empty(x2.shape, x2.dtype)
    xhat = pool.empty(x2.shape, x2.dtype)
    _normalize(x2, moving_mean.astype(x.dtype), inv_std, gamma, beta, y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), gamma * inv_std


def batchnorm_backward_infer(dy, xhat, scale):
    same_shape("batchnorm_backward_infer", dy.shape, xhat=xhat)
    channel_vectors("batchnorm_backward_infer", dy.shape[-1], scale=scale)
    dy2, xhat2 = _rows(dy), _rows(xhat)
    zero = np.zeros(dy2.shape[1], dy2.dtype)
    dbeta, dgamma = channel_sums(dy2, zero, xhat2, zero, row_blocks(dy2.shape[0]))
    dx = pool.empty(dy2.shape, dy2.dtype)
    _scale_rows(dy2, scale.astype(dy.dtype), dx)
    return dx.reshape(dy.shape), dgamma.astype(dy.dtype), dbeta.astype(dy.dtype)


KERNELS = {
    "batchnorm_forward_train": batchnorm_forward_train,
    "batchnorm_backward_train": batchnorm_backward_train,
    "batchnorm_forward_infer": batchnorm_forward_infer,
    "batchnorm_backward_infer": batchnorm_backward_infer,
}
