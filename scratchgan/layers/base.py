"""The Layer contract every layer follows.

    layer.build(input_shape)            create weights (called by the first forward)
    y  = layer.forward(x, training)     training=True caches what backward needs
    dx = layer.backward(dy, need_param_grads=True, need_input_grad=True)

``params`` holds the trainable arrays and ``grads`` the gradients under the same keys.
Gradients *accumulate* (``+=``) across backward calls until ``zero_grad()``, so
"backward on real, backward on fake, one optimizer step" is correct. A frozen layer
(``need_param_grads=False``) computes only dx, which is what a GAN's generator step
needs of the discriminator. A first layer (its input is data or a latent, nothing to
differentiate) is told ``need_input_grad=False``: it adds its parameter gradients and
returns None, and a linear layer then skips its backward-data op, the one GEMM
(or convolution) of its backward that only dx needs. ``buffers`` holds state that is not trained
(BatchNorm's moving statistics); Keras counts it among the parameters and so do we.

Weights live where the active backend keeps arrays (:mod:`scratchgan.xp`): NumPy arrays,
or CuPy arrays on the GPU for the cupy backend. They are drawn on the host with NumPy's
generator (so every backend starts from the same weights) and moved once, when built;
``to_backend()`` moves a built layer after ``set_backend``.

A layer writes two methods, as cs231n's forward/backward pairs do::

    y, cache = self._forward(x, training)          # what backward will need, in ``cache``
    dx = self._backward(dy, cache, need_param_grads)
    self._backward_params(dy, cache)               # optional: the parameter gradients alone

``Layer.forward`` keeps ``cache`` in one slot (with the output's shape, which dy must
have) when asked to, and ``Layer.backward`` hands it back and frees it. So a backward
always differentiates the latest forward, or fails clearly if that kept no cache.
"""
from __future__ import annotations

import re

import numpy as np

from ..backend import backend_module, to_device
from ..errors import ScratchganError
from ..xp import is_device_array


class LayerError(ScratchganError, ValueError):
    """A layer was given an input it cannot take, or was called out of order."""


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("2_d", "2d")


class Layer:
    """Base class: lazy build, the single cache slot, gradient accumulation, shapes."""

    #: expected rank of the input, batch axis included (None: any rank >= 2)
    input_ndim: int | None = None
    #: True for layers that draw random numbers per row (Dropout): their _forward takes the
    #: batch ``share`` of data-parallel training as a third argument
    draws_per_row = False

    def __init__(self, input_shape=None, name: str | None = None, dtype=np.float32):
        self.name = name or _snake(type(self).__name__)
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray | None] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.built = False
        self.input_shape = None if input_shape is None else (None, *tuple(input_shape))
        self.output_shape = None
        self.trainable = True
        self.rng = np.random.default_rng()
        self._cache = None
        self._on_device = False  # whether the weights are CuPy arrays (set when built or moved)

    # --- building -----------------------------------------------------------------
    def build(self, input_shape) -> tuple:
        """Create the weights for inputs of ``input_shape`` (batch axis first, may be None)."""
        input_shape = (None, *tuple(input_shape)[1:])
        self._check_input_shape(input_shape)
        self.input_shape = input_shape
        try:
            self._build(input_shape)
            self.output_shape = tuple(self.compute_output_shape(input_shape))
        except LayerError:
            raise
        except ValueError as err:  # e.g. an input smaller than a "valid" window (ops/geometry.py)
            raise LayerError(f"{self.name}: input {tuple(input_shape[1:])}: {err}") from None
        self.grads = {k: None for k in self.params}
        self._on_device = backend_module() is not np
        self.built = True
        return self.output_shape

    def _build(self, input_shape) -> None:
        """Create self.params / self.buffers (layers without weights need not override)."""

    def compute_output_shape(self, input_shape) -> tuple:
        return input_shape

    def _check_input_shape(self, shape) -> None:
        if self.input_ndim is not None and len(shape) != self.input_ndim:
            raise LayerError(
                f"{self.name}: expected an input of rank {self.input_ndim} "
                f"({self._rank_hint()}), got shape {_fmt(shape)}"
            )

    def _rank_hint(self) -> str:
        return {2: "batch, features", 4: "batch, height, width, channels"}.get(self.input_ndim, "")

    def _add_param(self, key, value) -> None:
        self.params[key] = to_device(value, dtype=self.dtype)

    def _add_buffer(self, key, value) -> None:
        self.buffers[key] = to_device(value, dtype=self.dtype)

    # --- running ------------------------------------------------------------------
    def __call__(self, x, training: bool = True, keep_cache=None, share=None):
        return self.forward(x, training=training, keep_cache=keep_cache, share=share)

    def forward(self, x, training: bool = True, keep_cache: bool | None = None, share=None):
        """y = f(x). Builds on the first call.

        ``training`` picks the behaviour (batch statistics, dropout); ``keep_cache``
        (default: the value of ``training``) keeps what backward needs, so an
        inference-mode forward can be differentiated too (gradient checks do).
        ``share`` (data-parallel training: this rank's rows of the global batch) reaches
        the layers that draw per row, so every rank draws what one process would.
        """
        self._cache = None  # a backward must never see an older forward's cache
        x = self._check_input(x)
        if not self.built:
            self.build(x.shape)
            x = self._as_array(x)  # the weights exist now: the input must live where they do
        elif tuple(x.shape[1:]) != tuple(self.input_shape[1:]):
            raise LayerError(
                f"{self.name}: built for inputs of shape {_fmt(self.input_shape)}, "
                f"got {_fmt(x.shape)}"
            )
        out = self._forward(x, training, share) if self.draws_per_row else self._forward(x, training)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise LayerError(f"{self.name}: _forward must return (y, cache), got {type(out).__name__}")
        y, cache = out
        keep = training if keep_cache is None else keep_cache
        if keep:
            self._cache = (cache, tuple(y.shape))
        return y

    def backward(self, dy, need_param_grads: bool = True, need_input_grad: bool = True):
        """dx = dL/dx given dy = dL/dy; adds dL/dparam into self.grads unless told not to.

        ``need_input_grad=False``: the caller has no use for dx (this layer's input is data);
        only the parameter gradients are added, and None is returned."""
        if self._cache is None:
            raise LayerError(
                f"{self.name}: backward() needs a forward(x, training=True) first "
                f"(each forward's cache serves exactly one backward)"
            )
        dy = self._as_array(dy)
        (cache, output_shape), self._cache = self._cache, None
        if tuple(dy.shape) != tuple(output_shape):
            raise LayerError(
                f"{self.name}: dy has shape {_fmt(dy.shape)}, expected the output's shape {_fmt(output_shape)}"
            )
        learns = need_param_grads and self.trainable
        if need_input_grad:
            return self._backward(dy, cache, learns)
        if learns and self.params:
            self._backward_params(dy, cache)
        return None

    def discard_cache(self) -> None:
        """Forget the latest forward's cache (a model skips the backward of layers whose
        input gradient no one needs and that learn nothing)."""
        self._cache = None

    def _as_array(self, a):
        """``a`` as an array of the module the weights live in; a clear error on a mix-up."""
        if not isinstance(a, np.ndarray) and not is_device_array(a):
            a = backend_module().asarray(a)
        if self.params and is_device_array(a) != self._on_device:
            raise LayerError(
                f"{self.name}: input is a {_where(a)} array but the weights are {_where(next(iter(self.params.values())))} "
                f"arrays; build the model under the backend you run it with, or call model.to_backend()"
            )
        return a

    def _check_input(self, x):
        x = self._as_array(x)
        if x.dtype.kind != "f":
            raise LayerError(f"{self.name}: expected a floating-point input, got dtype {x.dtype}")
        self._check_input_shape(x.shape)
        return x

    def _forward(self, x, training):
        """Return (y, cache): the output, and what _backward needs (None if nothing)."""
        raise NotImplementedError

    def _backward(self, dy, cache, need_param_grads):
        """Return dx; add the parameter gradients with _accumulate when need_param_grads."""
        raise NotImplementedError

    def _backward_params(self, dy, cache) -> None:
        """Add the parameter gradients only (dx is not needed). The default runs the full
        ``_backward`` and drops dx; a layer whose dx costs work of its own overrides it."""
        self._backward(dy, cache, True)

    def _accumulate(self, key, grad) -> None:
        if self.grads.get(key) is None:
            self.grads[key] = grad
        else:
            self.grads[key] += grad

    def zero_grad(self) -> None:
        """Forget accumulated gradients (they are set afresh by the next backward)."""
        self.grads = {k: None for k in self.params}

    # --- bookkeeping --------------------------------------------------------------
    def count_params(self) -> int:
        """Weights and buffers, as Keras counts them."""
        return int(sum(a.size for a in self.params.values()) + sum(a.size for a in self.buffers.values()))

    def to_backend(self):
        """Move params and buffers to the active backend's array module; returns self."""
        for store in (self.params, self.buffers):
            for k, v in store.items():
                store[k] = to_device(v)
        self._on_device = backend_module() is not np
        self.zero_grad()
        return self

    def astype(self, dtype):
        """Cast params and buffers to ``dtype`` in place; returns self."""
        self.dtype = np.dtype(dtype)
        for store in (self.params, self.buffers):
            for k, v in store.items():
                store[k] = v.astype(dtype)
        self.zero_grad()
        return self

    def get_config(self) -> dict:
        return {}

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({cfg})"


def _where(a) -> str:
    return "CuPy (GPU)" if is_device_array(a) else "NumPy (host)"


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def glorot_limit(shape) -> float:
    """sqrt(6 / (fan_in + fan_out)), with Keras's fans: for a dense kernel (in, out) the two
    axes; for a conv kernel (kh, kw, a, b) the receptive field kh*kw times a and times b."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


def glorot_uniform(rng, shape, dtype):
    """Keras's default kernel initialiser: U(-l, l) with l = glorot_limit(shape)."""
    limit = glorot_limit(shape)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
