"""Direct, loop-by-loop definitions of the ops, written from the formulas alone.

They share no code with scratchgan.ops (not even the padding arithmetic), so the
tests that compare the two are an independent check of the vectorised reference.
Use tiny shapes: these loop over every output element.
"""
from __future__ import annotations

import math

import numpy as np


def _same_pads(length, kernel, stride):
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return out, total // 2


def _out_and_pad(length, kernel, stride, padding):
    if padding == "valid":
        return (length - kernel) // stride + 1, 0
    return _same_pads(length, kernel, stride)


def conv2d(x, k, b, strides, padding):
    """y[n,p,q,f] = b[f] + sum_{i,j,c} x[n, p*sh+i-top, q*sw+j-left, c] * k[i,j,c,f] (zero outside)."""
    n, h, w, c = x.shape
    kh, kw, _, f = k.shape
    sh, sw = strides
    ho, top = _out_and_pad(h, kh, sh, padding)
    wo, left = _out_and_pad(w, kw, sw, padding)
    y = np.zeros((n, ho, wo, f), dtype=np.float64)
    for b_ in range(n):
        for p in range(ho):
            for q in range(wo):
                for i in range(kh):
                    for j in range(kw):
                        r, s = p * sh + i - top, q * sw + j - left
                        if 0 <= r < h and 0 <= s < w:
                            y[b_, p, q, :] += x[b_, r, s, :] @ k[i, j, :, :]
    if b is not None:
        y += b
    return y


def conv2d_transpose(x, k, b, strides, padding):
    """Scatter form: each input pixel adds k * x into the output window it maps to.
    k has Keras's transposed layout (kh, kw, F, C_in); output size as Keras computes it."""
    n, h, w, c = x.shape
    kh, kw, f, _ = k.shape
    sh, sw = strides
    if padding == "valid":
        ho, wo = h * sh + max(kh - sh, 0), w * sw + max(kw - sw, 0)
        top = left = 0
    else:
        ho, wo = h * sh, w * sw
        top = max((h - 1) * sh + kh - ho, 0) // 2
        left = max((w - 1) * sw + kw - wo, 0) // 2
    y = np.zeros((n, ho, wo, f), dtype=np.float64)
    for b_ in range(n):
        for r in range(h):
            for s in range(w):
                for i in range(kh):
                    for j in range(kw):
                        p, q = r * sh + i - top, s * sw + j - left
                        if 0 <= p < ho and 0 <= q < wo:
                            y[b_, p, q, :] += k[i, j, :, :] @ x[b_, r, s, :]
    if b is not None:
        y += b
    return y


def maxpool(x, pool, strides, padding):
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    ho, top = _out_and_pad(h, ph, sh, padding)
    wo, left = _out_and_pad(w, pw, sw, padding)
    y = np.full((n, ho, wo, c), -np.inf)
    for p in range(ho):
        for q in range(wo):
            for i in range(ph):
                for j in range(pw):
                    r, s = p * sh + i - top, q * sw + j - left
                    if 0 <= r < h and 0 <= s < w:
                        y[:, p, q, :] = np.maximum(y[:, p, q, :], x[:, r, s, :])
    return y


def batchnorm_train(x, gamma, beta, eps):
    """Per channel, over every other axis, one channel at a time."""
    y = np.empty(x.shape, dtype=np.float64)
    for ch in range(x.shape[-1]):
        v = x[..., ch].astype(np.float64)
        mean = sum(v.ravel()) / v.size
        var = sum((t - mean) ** 2 for t in v.ravel()) / v.size
        y[..., ch] = gamma[ch] * (v - mean) / math.sqrt(var + eps) + beta[ch]
    return y


def upsample_nearest(x, size):
    n, h, w, c = x.shape
    sh, sw = size
    y = np.empty((n, h * sh, w * sw, c), dtype=x.dtype)
    for p in range(h * sh):
        for q in range(w * sw):
            y[:, p, q, :] = x[:, p // sh, q // sw, :]
    return y
