"""BatchNormalization over the last axis (features of (N, C), channels of (N, H, W, C)).

Training mode (statistics of this batch; m values per channel)::

    xhat = (x - mean) / sqrt(var + eps),   y = gamma * xhat + beta
    dx = gamma / (m * sqrt(var + eps)) * (m*dy - sum(dy) - xhat * sum(dy * xhat))
    dgamma = sum(dy * xhat),   dbeta = sum(dy)
    moving_mean = momentum * moving_mean + (1 - momentum) * mean       (same for the variance)

Inference mode: the moving statistics replace the batch's, so y is affine in x and
dx = dy * gamma / sqrt(moving_variance + eps). The moving statistics are buffers:
not trained, but counted in count_params() as Keras counts them.
``training`` picks the statistics; ``trainable=False`` freezes gamma and beta.

Under MPI (``sync=world``, a scratchgan.distributed World, given when the model is built:
``zoo.build(..., world=world)``) the batch is
spread over ranks and the statistics are those of the whole batch: the forward sums
x - k and (x - k)^2 per channel over every rank, k the previous batch's mean (one Allreduce of
2C+1 numbers: m is the global count), the backward sums dy and dy * xhat (one Allreduce of 2C numbers) and uses those
global sums in dx. gamma's and beta's gradients stay this rank's sums; the trainer adds
them up over the ranks with every other gradient. Derivation: docs/distributed.md.

The ops: scratchgan/ops/batchnorm.py. Derivation: docs/derivations.md, "BatchNormalization".
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import ops
from ..xp import array_module, like, to_host
from .base import Layer, LayerError


class TrainingCache(NamedTuple):
    """What the training-mode backward needs: xhat (x's shape) and 1/sqrt(var + eps) (C,)."""

    xhat: object
    inv_std: object


class InferenceCache(NamedTuple):
    """What the inference-mode backward needs: xhat and gamma / sqrt(moving_variance + eps) (C,)."""

    xhat: object
    scale: object


class SynchronisedCache(NamedTuple):
    """The training-mode cache when the batch statistics span MPI ranks: m is the global count."""

    xhat: object
    inv_std: object
    m: float


class BatchNormalization(Layer):
    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, sync=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum <= 1:
            raise LayerError(f"BatchNormalization: momentum must be in [0, 1], got {momentum}")
        if epsilon <= 0:
            raise LayerError(f"BatchNormalization: epsilon must be positive, got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.sync = sync  # under MPI: the World whose ranks share the batch statistics
        self._shift = None  # under MPI: the previous batch's mean (float64, host), the next sums' shift

    def _check_input_shape(self, shape):
        if len(shape) < 2:
            raise LayerError(f"{self.name}: expected an input with a batch axis and a channel axis, got {shape}")

    def _build(self, input_shape):
        c = input_shape[-1]
        self._add_param("gamma", np.ones(c))
        self._add_param("beta", np.zeros(c))
        self._add_buffer("moving_mean", np.zeros(c))
        self._add_buffer("moving_variance", np.ones(c))

    def _forward(self, x, training):
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            y, xhat, scale = ops.batchnorm_forward_infer(
                x, gamma, beta, self.buffers["moving_mean"], self.buffers["moving_variance"], self.epsilon
            )
            return y, InferenceCache(xhat, scale)
        if self.sync is not None and self.sync.size > 1:
            return self._synchronised_forward(x, gamma, beta)
        y, xhat, inv_std, mean, var = ops.batchnorm_forward_train(x, gamma, beta, self.epsilon)
        self._update_moving(mean, var)
        return y, TrainingCache(xhat, inv_std)

    def _update_moving(self, mean, var):
        mom = self.momentum
        for key, stat in (("moving_mean", mean), ("moving_variance", var)):
            buf = self.buffers[key]
            buf *= mom
            buf += (1 - mom) * stat.astype(buf.dtype, copy=False)

    def _synchronised_forward(self, x, gamma, beta):
        """Shifted sums over every rank, as the one-process kernels form them (no cancellation
        when the mean is large): with k the same on every rank and close to the mean (the
        previous batch's mean; at the first step rank 0's first row, broadcast),
        S1 = sum (x - k), S2 = sum (x - k)^2, mean = k + S1/m, var = S2/m - (S1/m)^2."""
        c, axes = x.shape[-1], tuple(range(x.ndim - 1))
        if x.size == 0 or c == 0:
            raise LayerError(f"{self.name}: batch normalisation needs at least one value per channel on each rank, "
                             f"got an input of shape {tuple(x.shape)}")
        shift = self._shift
        if shift is None or shift.shape != (c,):
            shift = self.sync.broadcast(to_host(x.reshape(-1, c)[0]).astype(np.float64))
        centred = x.astype(np.float64) - like(shift, x)  # one float64 copy of x, squared in place below
        s1 = to_host(centred.sum(axis=axes))
        array_module(centred).square(centred, out=centred)
        local = np.concatenate([s1, to_host(centred.sum(axis=axes)), [x.size // c]])
        total = self.sync.allreduce_sum(local)
        m = total[-1]
        offset = total[:c] / m
        mean = shift + offset
        self._shift = mean
        var = np.maximum(total[c:2 * c] / m - offset * offset, 0)
        mean_x, var_x = like(mean.astype(x.dtype), x), like(var.astype(x.dtype), x)
        y, xhat, _ = ops.batchnorm_forward_infer(x, gamma, beta, mean_x, var_x, self.epsilon)
        inv_std = like((1 / np.sqrt(var + self.epsilon)).astype(x.dtype), x)
        self._update_moving(mean_x, var_x)
        return y, SynchronisedCache(xhat, inv_std, m)

    def _synchronised_backward(self, dy, cache):
        """dx = gamma * inv_std / m * (m*dy - sum(dy) - xhat * sum(dy * xhat)), the sums over every rank;
        returns (dx, this rank's dgamma, this rank's dbeta)."""
        c, axes = dy.shape[-1], tuple(range(dy.ndim - 1))
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * cache.xhat).sum(axis=axes)
        total = self.sync.allreduce_sum(np.concatenate([to_host(dbeta).astype(np.float64),
                                                        to_host(dgamma).astype(np.float64)]))
        sum_dy, sum_dy_xhat = (like(part.astype(dy.dtype), dy) for part in (total[:c], total[c:]))
        m = dy.dtype.type(cache.m)
        dx = (self.params["gamma"] * cache.inv_std / m) * (m * dy - sum_dy - cache.xhat * sum_dy_xhat)
        return dx.astype(dy.dtype, copy=False), dgamma, dbeta

    def _backward(self, dy, cache, need_param_grads):
        if isinstance(cache, InferenceCache):
            dx, dgamma, dbeta = ops.batchnorm_backward_infer(dy, cache.xhat, cache.scale)
        elif isinstance(cache, SynchronisedCache):
            dx, dgamma, dbeta = self._synchronised_backward(dy, cache)
        else:
            dx, dgamma, dbeta = ops.batchnorm_backward_train(dy, cache.xhat, cache.inv_std, self.params["gamma"])
        if need_param_grads:
            self._accumulate("gamma", dgamma)
            self._accumulate("beta", dbeta)
        return dx

    def get_config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon}
