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

The ops: scratchgan/ops/batchnorm.py. Derivation: docs/derivations.md, "BatchNormalization".
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import ops
from .base import Layer, LayerError


class TrainingCache(NamedTuple):
    """What the training-mode backward needs: xhat (x's shape) and 1/sqrt(var + eps) (C,)."""

    xhat: object
    inv_std: object


class InferenceCache(NamedTuple):
    """What the inference-mode backward needs: xhat and gamma / sqrt(moving_variance + eps) (C,)."""

    xhat: object
    scale: object


class BatchNormalization(Layer):
    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum <= 1:
            raise LayerError(f"BatchNormalization: momentum must be in [0, 1], got {momentum}")
        if epsilon <= 0:
            raise LayerError(f"BatchNormalization: epsilon must be positive, got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

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
        y, xhat, inv_std, mean, var = ops.batchnorm_forward_train(x, gamma, beta, self.epsilon)
        mom = self.momentum
        for key, stat in (("moving_mean", mean), ("moving_variance", var)):
            buf = self.buffers[key]
            buf *= mom
            buf += (1 - mom) * stat.astype(buf.dtype, copy=False)
        return y, TrainingCache(xhat, inv_std)

    def _backward(self, dy, cache, need_param_grads):
        if isinstance(cache, InferenceCache):
            dx, dgamma, dbeta = ops.batchnorm_backward_infer(dy, cache.xhat, cache.scale)
        else:
            dx, dgamma, dbeta = ops.batchnorm_backward_train(dy, cache.xhat, cache.inv_std, self.params["gamma"])
        if need_param_grads:
            self._accumulate("gamma", dgamma)
            self._accumulate("beta", dbeta)
        return dx

    def get_config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon}
