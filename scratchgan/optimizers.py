"""Optimizers with Keras's update rules and defaults, updating parameters in place.

    opt = Adam(lr=2e-4, beta_1=0.5)
    opt.step(model.params, model.grads)      # dicts with the same keys

Parameters whose gradient is None (not computed since the last zero_grad) are left
alone. State (moments, step count) is kept per parameter name, and
``state_dict()`` / ``load_state_dict()`` carry it through a checkpoint.

Adam      m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  t += 1
          p -= lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)
SGD       p -= lr*g;  with momentum u = mu*u - lr*g, p += u  (Nesterov: p += mu*u - lr*g)
RMSprop   lr_t = lr / (1 + decay*(t - 1));  g = clip(g, -c, c) if clipvalue;
          v = rho*v + (1-rho)*g^2;  p -= lr_t * g / sqrt(v + eps)
"""
from __future__ import annotations

import math

import numpy as np

from . import ops
from .errors import ScratchganError
from .xp import array_module, like, to_host


class OptimizerError(ScratchganError, ValueError):
    pass


def _number(value) -> bool:
    """A real, finite number (not NaN, not infinite, not a bool or a string)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise OptimizerError(message)


class Optimizer:
    #: names of the per-parameter state arrays (moments), created lazily
    slots: tuple[str, ...] = ()

    def __init__(self, lr: float, clipvalue: float | None = None):
        name = type(self).__name__
        _require(_number(lr) and lr > 0, f"{name}: lr must be a positive finite number, got {lr!r}")
        _require(clipvalue is None or (_number(clipvalue) and clipvalue > 0),
                 f"{name}: clipvalue must be a positive finite number, got {clipvalue!r}")
        self.lr = float(lr)
        self.clipvalue = clipvalue
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}
        #: names whose state came from load_state_dict (host arrays): each moves beside its parameter
        #: at its first update, once; a parameter without a gradient at the first step keeps its place
        self._loaded: set = set()

    def step(self, params: dict, grads: dict) -> None:
        """Update every parameter in ``params`` that has a gradient in ``grads``."""
        missing = set(params) - set(grads)
        if missing:
            raise OptimizerError(f"no gradient entry for parameters {sorted(missing)}")
        self.iterations += 1
        for name, param in params.items():
            grad = grads[name]
            if grad is None:
                continue
            if grad.shape != param.shape:
                raise OptimizerError(f"gradient of {name!r} has shape {grad.shape}, the parameter {param.shape}")
            if self.clipvalue is not None:
                grad = array_module(grad).clip(grad, -self.clipvalue, self.clipvalue)
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = {s: array_module(param).zeros_like(param) for s in self.slots}
            elif name in self._loaded:  # its first update since load_state_dict
                state = self.state[name] = {s: like(a, param) for s, a in state.items()}
                self._loaded.discard(name)
            self._update(param, grad, state)

    def _update(self, param, grad, state) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat {'iterations': ..., 'PARAM/SLOT': array} for saving."""
        out = {"iterations": np.array(self.iterations)}
        for name, slots in self.state.items():
            for slot, arr in slots.items():
                out[f"{name}/{slot}"] = to_host(arr)
        return out

    def load_state_dict(self, flat: dict, source: str = "the state") -> None:
        """Restore from ``state_dict()`` (host arrays; the next step moves them beside their parameter).

        The state must be this kind of optimizer's: the same slots for every parameter."""
        state = {}
        for key, arr in flat.items():
            if key != "iterations":
                name, slot = key.rsplit("/", 1)
                state.setdefault(name, {})[slot] = np.array(to_host(arr))
        for name, slots in state.items():
            if set(slots) != set(self.slots):
                raise OptimizerError(
                    f"{source} holds {', '.join(sorted(slots))} for {name!r}, but {type(self).__name__} keeps "
                    f"{', '.join(self.slots) or 'nothing'} per parameter: state resumes only into the optimizer "
                    f"(and momentum or not) that wrote it")
        self.iterations = int(flat["iterations"])
        self.state = state
        self._loaded = set(state)

    def get_config(self) -> dict:
        return {"lr": self.lr, "clipvalue": self.clipvalue}


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, clipvalue=None):
        super().__init__(lr, clipvalue)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            _require(_number(value) and 0 <= value < 1, f"Adam: {name} must be in [0, 1), got {value!r}")
        _require(_number(epsilon) and epsilon > 0, f"Adam: epsilon must be a positive finite number, got {epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _update(self, param, grad, state):
        ops.adam_update(param, grad, state["m"], state["v"], self.lr, self.beta_1, self.beta_2, self.epsilon, self.iterations)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class SGD(Optimizer):
    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, clipvalue=None):
        super().__init__(lr, clipvalue)
        _require(_number(momentum) and 0 <= momentum < 1, f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.slots = ("velocity",) if self.momentum > 0 else ()

    def _update(self, param, grad, state):
        ops.sgd_update(param, grad, state.get("velocity"), self.lr, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    slots = ("v",)

    def __init__(self, lr=1e-3, rho=0.9, epsilon=1e-7, clipvalue=None, decay=0.0):
        super().__init__(lr, clipvalue)
        _require(_number(rho) and 0 <= rho < 1, f"RMSprop: rho must be in [0, 1), got {rho!r}")
        _require(_number(epsilon) and epsilon > 0, f"RMSprop: epsilon must be a positive finite number, got {epsilon!r}")
        _require(_number(decay) and decay >= 0, f"RMSprop: decay must be a finite number >= 0, got {decay!r}")
        self.rho, self.epsilon, self.decay = float(rho), float(epsilon), float(decay)

    def _update(self, param, grad, state):
        lr = self.lr / (1.0 + self.decay * (self.iterations - 1))
        ops.rmsprop_update(param, grad, state["v"], lr, self.rho, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon, "decay": self.decay}
