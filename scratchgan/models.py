"""Sequential: a stack of layers, run forward in order and backward in reverse.

    model = Sequential([Dense(128), LeakyReLU(0.01), Dense(784, activation="tanh")],
                       input_shape=(100,), seed=0)
    y  = model.forward(x)          # training=True caches for backward
    dx = model.backward(dy)        # fills model.grads; need_param_grads=False for a frozen model
    model.backward(dy, need_input_grad=False)   # x is data: no dx, the first layer's dx op skipped

``model.params`` / ``model.grads`` are flat dicts keyed "layer_name/param" whose
arrays are the layers' own, so an optimizer updating them in place trains the model.
"""
from __future__ import annotations

import numpy as np

from .errors import CheckpointError
from .layers.base import Layer, LayerError, _fmt
from .safe_io import atomic_save_npz, read_npz
from .xp import array_module, like, to_host


class Sequential:
    def __init__(self, layers, input_shape=None, name: str = "sequential", seed=None):
        self.layers: list[Layer] = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{name}: item {i} is a {type(layer).__name__}, not a scratchgan Layer")
        self.name = name
        self._unique_names()
        if seed is not None:  # one independent stream per layer: weights, dropout masks
            for layer, rng in zip(self.layers, np.random.default_rng(seed).spawn(len(self.layers))):
                layer.rng = rng
        self.input_shape = None
        if input_shape is not None:
            self.build((None, *tuple(input_shape)))
        elif self.layers and self.layers[0].input_shape is not None:
            self.build(self.layers[0].input_shape)

    def _unique_names(self):
        seen: dict[str, int] = {}
        for layer in self.layers:
            base = layer.name
            count = seen.get(base, 0)
            seen[base] = count + 1
            if count:
                layer.name = f"{base}_{count}"

    # --- building and running -----------------------------------------------------
    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape`` (batch axis first)."""
        shape = (None, *tuple(input_shape)[1:])
        self.input_shape = shape
        for layer in self.layers:
            shape = layer.build(shape) if not layer.built else layer.output_shape
        return shape

    @property
    def built(self):
        return all(layer.built for layer in self.layers)

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    def forward(self, x, training: bool = True, keep_cache: bool | None = None, share=None):
        """Every layer's forward in order (``share``: see Layer.forward)."""
        if not self.built:
            self.build(np.shape(x))
        for layer in self.layers:
            x = layer.forward(x, training=training, keep_cache=keep_cache, share=share)
        return x

    __call__ = forward

    def predict(self, x, batch_size: int = 1024):
        """Inference-mode forward in batches, keeping no cache.

        ``x`` may live on the host or the device; it is moved to where the weights are,
        and so is the result (``scratchgan.xp.to_host`` brings it back).
        """
        weights = next(iter(self.params.values()), None)
        x = like(x, weights) if weights is not None else np.asarray(x)
        xp = array_module(x)
        outs = [self.forward(x[i : i + batch_size], training=False) for i in range(0, len(x), batch_size)]
        return xp.concatenate(outs) if outs else xp.empty((0, *self.output_shape[1:]))

    def backward(self, dy, need_param_grads: bool = True, need_input_grad: bool = True):
        """Every layer's backward in reverse order; returns dx (None when not
        ``need_input_grad``).

        ``need_input_grad=False`` (the input is data or a latent): the backward stops at
        the first layer that learns, which computes its parameter gradients and no dx
        (for a Dense or convolution first layer, one GEMM or convolution fewer); the
        layers before it (a Flatten) run no backward at all."""
        layers = self.layers
        start = 0
        if not need_input_grad:
            learners = [i for i, layer in enumerate(layers) if need_param_grads and layer.trainable and layer.params]
            start = learners[0] if learners else len(layers)
            for layer in layers[:start]:
                layer.discard_cache()
        for i in range(len(layers) - 1, start - 1, -1):
            dy = layers[i].backward(dy, need_param_grads=need_param_grads,
                                    need_input_grad=need_input_grad or i > start)
        return dy if need_input_grad else None

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    # --- parameters ----------------------------------------------------------------
    @property
    def params(self) -> dict:
        return {f"{l.name}/{k}": v for l in self.layers for k, v in l.params.items()}

    @property
    def grads(self) -> dict:
        return {f"{l.name}/{k}": v for l in self.layers for k, v in l.grads.items()}

    @property
    def buffers(self) -> dict:
        return {f"{l.name}/{k}": v for l in self.layers for k, v in l.buffers.items()}

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def to_backend(self):
        """Move every weight to the active backend's arrays (after ``set_backend``)."""
        for layer in self.layers:
            layer.to_backend()
        return self

    def astype(self, dtype):
        for layer in self.layers:
            layer.astype(dtype)
        return self

    @property
    def trainable(self):
        return all(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers:
            layer.trainable = bool(value)

    def summary(self, print_fn=print) -> str:
        """Keras's table: layer (type), output shape, parameter count; then the totals."""
        if not self.built:
            raise LayerError(f"{self.name}: summary() needs a built model (give input_shape= or run a forward)")
        rows = [(f"{l.name} ({type(l).__name__})", _fmt(l.output_shape), f"{l.count_params():,}") for l in self.layers]
        w0 = max(30, *(len(r[0]) + 2 for r in rows))
        w1 = max(24, *(len(r[1]) + 2 for r in rows))
        line = "_" * (w0 + w1 + 14)
        out = [f'Model: "{self.name}"', line, f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>14}", "=" * len(line)]
        out += [f"{a:<{w0}}{b:<{w1}}{c:>14}" for a, b, c in rows]
        trainable = sum(v.size for v in self.params.values()) if self.trainable else 0
        total = self.count_params()
        out += [
            "=" * len(line),
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            line,
        ]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    # --- saving ----------------------------------------------------------------------
    def weights(self) -> dict:
        """Every parameter and buffer, keyed "layer/name" (NumPy copies, also from the GPU)."""
        return {k: np.array(to_host(v)) for k, v in {**self.params, **self.buffers}.items()}

    def set_weights(self, arrays: dict, source: str = "weights") -> None:
        """Copy ``arrays`` into the model's parameters and buffers; names and shapes must match."""
        own = {**self.params, **self.buffers}
        missing, unexpected = sorted(set(own) - set(arrays)), sorted(set(arrays) - set(own))
        if missing or unexpected:
            raise CheckpointError(
                f"{source} do not fit model {self.name!r}: missing {missing or 'nothing'}, "
                f"unexpected {unexpected or 'nothing'}"
            )
        for key, target in own.items():
            value = to_host(arrays[key])
            if value.shape != target.shape:
                raise CheckpointError(f"{source}: {key} has shape {value.shape}, model {self.name!r} expects {target.shape}")
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                raise CheckpointError(f"{source}: {key} should hold finite floating-point values, got {value.dtype}"
                                      f"{'' if value.dtype.kind != 'f' else ' with NaN or infinite values'}")
            target[...] = like(value, target)

    def save_weights(self, path) -> None:
        """All parameters and buffers to an .npz file, written atomically."""
        atomic_save_npz(path, self.weights())

    def load_weights(self, path) -> None:
        self.set_weights(read_npz(path, "weights", typed=True), source=str(path))
