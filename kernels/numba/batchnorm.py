"""Batch-norm kernels over the last axis (channels); x viewed as (m, C) rows.

Training forward: one read of x for the per-channel sums of u = x - shift and u^2, in
float64 over row blocks (one block per task, then added up), with shift = the first
row, so mean = shift + sum(u)/m and var = sum(u^2)/m - (sum(u)/m)^2 do not cancel;
one write pass for y and xhat.
Training backward: one pass for dbeta = sum(dy), dgamma = sum(dy * xhat); one pass for
    dx = gamma * inv_std / m * (m * dy - dbeta - xhat * dgamma).
Inference is a per-channel affine map, one pass each way.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import pool
from .threads import threads_for

BLOCKS = 16  # row blocks for the parallel channel sums


@njit(parallel=True, cache=True)
def _sum_and_dot(a, b):
    """Per channel, in float64: (sum of a, sum of a * b)."""
    m, c = a.shape
    s1 = np.zeros((BLOCKS, c))
    s2 = np.zeros((BLOCKS, c))
    for t in prange(BLOCKS):
        for r in range(t * m // BLOCKS, (t + 1) * m // BLOCKS):
            for ch in range(c):
                s1[t, ch] += a[r, ch]
                s2[t, ch] += a[r, ch] * b[r, ch]
    return s1.sum(axis=0), s2.sum(axis=0)


@njit(parallel=True, cache=True)
def _shifted_moments(a, shift):
    """Per channel, in float64: (sum of u, sum of u^2) with u = a - shift."""
    m, c = a.shape
    s1 = np.zeros((BLOCKS, c))
    s2 = np.zeros((BLOCKS, c))
    for t in prange(BLOCKS):
        for r in range(t * m // BLOCKS, (t + 1) * m // BLOCKS):
            for ch in range(c):
                u = a[r, ch] - shift[ch]
                s1[t, ch] += u
                s2[t, ch] += u * u
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
    """a as (rows, channels); also sets the thread count for the kernels on it."""
    threads_for(a.size)
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def batchnorm_forward_train(x, gamma, beta, eps):
    if x.size == 0:  # there is no first row to shift by
        raise ValueError(f"batch normalisation in training mode needs at least one value per channel, "
                         f"got an input of shape {tuple(x.shape)}")
    x2 = _rows(x)
    m = x2.shape[0]
    # one pass of shifted sums in float64 (shift = the first row, a sample of each
    # channel, so no cancellation): mean = shift + S1/m, var = S2/m - (S1/m)^2
    shift = x2[0].copy()
    s1, s2 = _shifted_moments(x2, shift)
    mean = (shift + s1 / m).astype(x.dtype)
    var = np.maximum(s2 / m - (s1 / m) ** 2, 0).astype(x.dtype)
    inv_std = (1 / np.sqrt(var + x.dtype.type(eps))).astype(x.dtype)
    y = pool.empty(x2.shape, x2.dtype)
    xhat = pool.empty(x2.shape, x2.dtype)
    _normalize(x2, mean, inv_std, gamma, beta, y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), inv_std, mean, var


def batchnorm_backward_train(dy, xhat, inv_std, gamma):
    dy2, xhat2 = _rows(dy), _rows(xhat)
    m = dy2.shape[0]
    dbeta, dgamma = _sum_and_dot(dy2, xhat2)
    dbeta, dgamma = dbeta.astype(dy.dtype), dgamma.astype(dy.dtype)
    dx = pool.empty(dy2.shape, dy2.dtype)
    _train_dx(dy2, xhat2, (gamma * inv_std / m).astype(dy.dtype), dbeta, dgamma, dy.dtype.type(m), dx)
    return dx.reshape(dy.shape), dgamma, dbeta


def batchnorm_forward_infer(x, gamma, beta, moving_mean, moving_var, eps):
    x2 = _rows(x)
    inv_std = (1 / np.sqrt(moving_var + x.dtype.type(eps))).astype(x.dtype)
    y = pool.empty(x2.shape, x2.dtype)
    xhat = pool.empty(x2.shape, x2.dtype)
    _normalize(x2, moving_mean.astype(x.dtype), inv_std, gamma, beta, y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), gamma * inv_std


def batchnorm_backward_infer(dy, xhat, scale):
    dy2, xhat2 = _rows(dy), _rows(xhat)
    dbeta, dgamma = _sum_and_dot(dy2, xhat2)
    dx = pool.empty(dy2.shape, dy2.dtype)
    _scale_rows(dy2, scale.astype(dy.dtype), dx)
    return dx.reshape(dy.shape), dgamma.astype(dy.dtype), dbeta.astype(dy.dtype)


KERNELS = {
    "batchnorm_forward_train": batchnorm_forward_train,
    "batchnorm_backward_train": batchnorm_backward_train,
    "batchnorm_forward_infer": batchnorm_forward_infer,
    "batchnorm_backward_infer": batchnorm_backward_infer,
}
