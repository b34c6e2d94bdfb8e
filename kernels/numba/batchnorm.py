"""Batch-norm kernels over the last axis (channels); x viewed as (m, C) rows.

Training forward: per-channel sums in float64 over row blocks (one block per task, then
added up), two reads of x for mean and variance, one write pass for y and xhat.
Training backward: one pass for dbeta = sum(dy), dgamma = sum(dy * xhat); one pass for
    dx = gamma * inv_std / m * (m * dy - dbeta - xhat * dgamma).
Inference is a per-channel affine map, one pass each way.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .threads import threads_for

BLOCKS = 16  # row blocks for the parallel channel sums


@njit(parallel=True, cache=True)
def _channel_sums(a, b, shift):
    """Per channel, in float64: (sum of a - shift, sum of (a - shift) * b)."""
    m, c = a.shape
    s1 = np.zeros((BLOCKS, c))
    s2 = np.zeros((BLOCKS, c))
    for t in prange(BLOCKS):
        for r in range(t * m // BLOCKS, (t + 1) * m // BLOCKS):
            for ch in range(c):
                u = a[r, ch] - shift[ch]
                s1[t, ch] += u
                s2[t, ch] += u * b[r, ch]
    return s1.sum(axis=0), s2.sum(axis=0)


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
    threads_for(a.size)
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def batchnorm_forward_train(x, gamma, beta, eps):
    x2 = _rows(x)
    m, c = x2.shape
    zero = np.zeros(c, dtype=x.dtype)
    total, _ = _channel_sums(x2, x2, zero)
    mean = (total / m).astype(x.dtype)
    var = (_centered_square_sum(x2, mean) / m).astype(x.dtype)
    inv_std = (1 / np.sqrt(var + x.dtype.type(eps))).astype(x.dtype)
    y = np.empty_like(x2)
    xhat = np.empty_like(x2)
    _normalize(x2, mean, inv_std, gamma, beta, y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), inv_std, mean, var


@njit(parallel=True, cache=True)
def _centered_square_sum(a, mean):
    m, c = a.shape
    s = np.zeros((BLOCKS, c))
    for t in prange(BLOCKS):
        for r in range(t * m // BLOCKS, (t + 1) * m // BLOCKS):
            for ch in range(c):
                u = a[r, ch] - mean[ch]
                s[t, ch] += u * u
    return s.sum(axis=0)


def batchnorm_backward_train(dy, xhat, inv_std, gamma):
    dy2, xhat2 = _rows(dy), _rows(xhat)
    m, c = dy2.shape
    dbeta, dgamma = _channel_sums(dy2, xhat2, np.zeros(c, dtype=dy.dtype))
    dbeta, dgamma = dbeta.astype(dy.dtype), dgamma.astype(dy.dtype)
    dx = np.empty_like(dy2)
    _train_dx(dy2, xhat2, (gamma * inv_std / m).astype(dy.dtype), dbeta, dgamma, dy.dtype.type(m), dx)
    return dx.reshape(dy.shape), dgamma, dbeta


def batchnorm_forward_infer(x, gamma, beta, moving_mean, moving_var, eps):
    x2 = _rows(x)
    inv_std = (1 / np.sqrt(moving_var + x.dtype.type(eps))).astype(x.dtype)
    y = np.empty_like(x2)
    xhat = np.empty_like(x2)
    _normalize(x2, moving_mean.astype(x.dtype), inv_std, gamma, beta, y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), gamma * inv_std


def batchnorm_backward_infer(dy, xhat, scale):
    dy2, xhat2 = _rows(dy), _rows(xhat)
    dbeta, dgamma = _channel_sums(dy2, xhat2, np.zeros(dy2.shape[1], dtype=dy.dtype))
    dx = np.empty_like(dy2)
    _scale_rows(dy2, scale.astype(dy.dtype), dx)
    return dx.reshape(dy.shape), dgamma.astype(dy.dtype), dbeta.astype(dy.dtype)


KERNELS = {
    "batchnorm_forward_train": batchnorm_forward_train,
    "batchnorm_backward_train": batchnorm_backward_train,
    "batchnorm_forward_infer": batchnorm_forward_infer,
    "batchnorm_backward_infer": batchnorm_backward_infer,
}
