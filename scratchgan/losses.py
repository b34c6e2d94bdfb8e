"""Binary cross-entropy as loss objects: ``loss = bce.forward(p, t); dp = bce.backward()``.

BinaryCrossentropy (on probabilities, clipped to [1e-7, 1 - 1e-7] as Keras does)::

    L = -mean(t * log(p) + (1 - t) * log(1 - p)),    dL/dp = (p - t) / (p * (1 - p)) / n

BinaryCrossentropy(from_logits=True) folds the sigmoid in, stable for any logit z::

    L = mean(max(z, 0) - z * t + log(1 + exp(-|z|))),    dL/dz = (sigmoid(z) - t) / n

Targets may be soft or noisy (any values in [0, 1]); they must have the prediction's
shape, or be a scalar that is broadcast to it.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .errors import ScratchganError
from .xp import array_module, like


class LossError(ScratchganError, ValueError):
    """Predictions and targets that a loss cannot take."""


class BinaryCrossentropy:
    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)
        self._cache = None

    def __call__(self, prediction, target):
        return self.forward(prediction, target)

    def forward(self, prediction, target):
        """The mean loss over all elements: a 0-d float64 array where the predictions live
        (on a GPU it stays there; ``float(loss)`` reads it).

        Predictions outside [0, 1] have no cross-entropy. On the host they are refused at
        once; on a GPU, where looking would cost a device-to-host read, they make the loss
        NaN, which the training loop's check that every loss is finite reports."""
        p = array_module(prediction).asarray(prediction)  # host or GPU, wherever it already is
        if p.dtype.kind != "f":
            raise LossError(f"predictions must be floating point, got dtype {p.dtype}")
        t = like(target, p, dtype=p.dtype)
        xp = array_module(p)
        if t.shape != p.shape:
            if t.ndim != 0:
                raise LossError(f"targets have shape {t.shape}, expected the predictions' shape {p.shape}")
            t = xp.full(p.shape, t, dtype=p.dtype)
        if self.from_logits:
            loss, sig = ops.bce_logits_forward(p, t)
            self._cache = ("logits", sig, t)
            return xp.asarray(loss, dtype=xp.float64)
        loss, pc = ops.bce_forward(p, t)
        self._cache = ("probabilities", p, pc, t)
        loss, outside = xp.asarray(loss, dtype=xp.float64), ((p < 0) | (p > 1)).any()
        if xp is not np:  # no read on the GPU: an outside prediction makes the loss NaN
            return xp.where(outside, xp.nan, loss)
        if outside:
            raise LossError("predictions must be probabilities in [0, 1]; for raw scores use "
                            "BinaryCrossentropy(from_logits=True)")
        return loss

    def backward(self):
        """dL/dprediction for the last forward (same shape as the prediction)."""
        if self._cache is None:
            raise LossError("backward() needs a forward(prediction, target) first")
        cache, self._cache = self._cache, None
        if cache[0] == "logits":
            return ops.bce_logits_backward(cache[1], cache[2])
        return ops.bce_backward(*cache[1:])


def binary_accuracy(probabilities, target, threshold: float = 0.5):
    """Fraction of predictions on the right side of ``threshold`` (Keras's binary accuracy):
    a 0-d float64 array where the predictions live."""
    p = array_module(probabilities).asarray(probabilities)
    t = like(target, p)
    xp = array_module(p)
    return xp.asarray(((p > threshold) == (t > threshold)).mean(), dtype=xp.float64)


class SoftmaxCrossentropy:
    """Cross-entropy of a softmax over logits against integer class labels (a classifier's loss).

    For logits z (N, K) and labels y (N,) in 0..K-1, with s = softmax(z) row by row::

        L = -1/N * sum_i log s[i, y_i]
          = 1/N * sum_i (logsumexp(z_i) - z[i, y_i])          (computed this way: stable)
        dL/dz = (s - onehot(y)) / N
    """

    def __init__(self):
        self._cache = None

    def forward(self, logits, labels) -> float:
        z = np.asarray(logits)
        y = np.asarray(labels)
        if z.ndim != 2 or z.dtype.kind != "f":
            raise LossError(f"logits must be floating point (N, classes), got {z.dtype} {z.shape}")
        if y.shape != (len(z),) or y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= z.shape[1])):
            raise LossError(f"labels must be {len(z)} integers in 0..{z.shape[1] - 1}, got {y.dtype} {y.shape}")
        shifted = z - z.max(axis=1, keepdims=True)
        log_s = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self._cache = (np.exp(log_s), y)
        return float(-log_s[np.arange(len(y)), y].mean())

    def backward(self):
        """dL/dlogits for the last forward, shape (N, classes)."""
        if self._cache is None:
            raise LossError("backward() needs a forward(logits, labels) first")
        (s, y), self._cache = self._cache, None
        grad = s.copy()
        grad[np.arange(len(y)), y] -= 1
        return grad / len(y)


def softmax(logits):
    """Row-wise softmax, shifted by each row's max so exp never overflows."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
