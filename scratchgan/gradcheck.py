"""Check a backward pass against central finite differences, in float64.

Why f = sum(y * dy) and how each layer's backward is derived: docs/derivations.md.

    report = scratchgan.gradcheck(layer, x)            # a layer, a Sequential, or [G, D]
    print(report)                                      # one row per tensor, its worst entry
    print(report.explain())                            # the five worst entries of each tensor
    assert report.max_error < 1e-7

Protocol (cs231n and chainer, see docs):
  * Everything is cast to float64 on a deep copy; the target itself is not touched.
  * The scalar checked is f = sum(y * dy) for a fixed random normal dy (never all ones:
    under ones BatchNorm's true dx is 0 and a wrong backward passes).
  * Numerical derivative: (f(v + h) - f(v - h)) / 2h with h = 1e-5 * max(1, rms(v)):
    the step follows the tensor's scale, so that inputs like 5*randn + 12 (BatchNorm's
    test) are not drowned in rounding noise.
  * Small tensors are checked element by element; large ones along random unit
    directions u, comparing (f(v + h u) - f(v - h u)) / 2h with <grad, u>.
  * Error: |a - n| / max(|a| + |n|, 1e-8) (cs231n's rel_error), max over the checks,
    where |a - n| is first reduced by the resolution of the numerical derivative,
    16 ulp(sum |y * dy|) / 2h: f is a sum whose rounding error scales with its terms,
    so a difference smaller than that says nothing. It matters for gradients that are truly zero (a bias followed by
    BatchNorm, whose mean subtraction cancels it) or tiny; everywhere else the
    resolution (about 1e-9 for |f| near 10) is far below the thresholds.
  * The input and every parameter are checked separately.
    The report shows both: ``raw_error`` (plain rel_error, the actual agreement) and
    ``max_error`` (judged against the thresholds), printed as "< resol." where every
    difference was below the resolution.
  * Random layers (Dropout) are replayed: their Generators are reset to the same
    state before every forward.
  * Kinks (ReLU, LeakyReLU, MaxPool) are only differentiable away from the kink: if an
    input lies within h of one, f(v + h) and f(v - h) straddle it and the check reports
    a large error that says nothing about the backward. Single-layer checks keep inputs
    away from kinks; in deep stacks, look at the pre-activations before suspecting a bug.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from .backend import backend_module
from .errors import UsageError
from .wording import counted
from .xp import like, to_float, to_host

H = 1e-5
FLOOR = 1e-8
#: how many of its worst comparisons a TensorCheck keeps
WORST_KEPT = 5


#: what the judged error column shows when every difference was below the resolution
BELOW_RESOLUTION = "< resol."


@dataclass
class ElementCheck:
    """One comparison: an entry (its index) or a random direction ("direction k")."""

    where: tuple | str
    analytic: float  # the backward's value (for a direction u: <grad, u>)
    numeric: float  # the central difference
    abs_error: float  # |analytic - numeric|
    rel_error: float  # |analytic - numeric| / max(|analytic| + |numeric|, 1e-8)

    @property
    def place(self) -> str:
        return self.where if isinstance(self.where, str) else str(tuple(int(i) for i in self.where))


@dataclass
class TensorCheck:
    name: str
    shape: tuple
    mode: str  # "elements" or "el.+N dir."
    checks: int
    max_error: float  # judged: rel_error after subtracting the resolution of central differences
    raw_error: float = 0.0  # plain rel_error, as measured
    worst_entries: list = field(default_factory=list)  # the worst ElementChecks, worst first (at most WORST_KEPT)

    @property
    def below_resolution(self) -> bool:
        """Every difference was within what central differences can resolve (judged error 0)."""
        return self.max_error == 0.0


def format_judged(error: float) -> str:
    """The judged error for a table: the number, or BELOW_RESOLUTION where it is 0."""
    return BELOW_RESOLUTION if error == 0.0 else f"{error:.2e}"


@dataclass
class GradcheckReport:
    target: str
    rows: list = field(default_factory=list)

    @property
    def max_error(self) -> float:
        """The largest judged error: what thresholds are compared with."""
        return max((r.max_error for r in self.rows), default=0.0)

    @property
    def raw_error(self) -> float:
        """The largest plain relative error."""
        return max((r.raw_error for r in self.rows), default=0.0)

    @property
    def worst(self) -> TensorCheck:
        """The row with the largest raw error (the judged one is 0 in most rows)."""
        return max(self.rows, key=lambda r: (r.raw_error, r.max_error))

    def __str__(self):
        lines = [f"gradcheck {self.target}",
                 f"  {'tensor':<28}{'shape':<20}{'checked':>16}  {'raw error':>9}  {'judged':>9}  worst at"]
        for r in self.rows:
            lines.append(f"  {r.name:<28}{str(r.shape):<20}{f'{r.checks} {r.mode}':>16}  "
                         f"{r.raw_error:>9.1e}  {format_judged(r.max_error):>9}  {r.worst_entries[0].place if r.worst_entries else '-'}")
        lines.append(f"  raw: |a - n| / max(|a| + |n|, 1e-8); judged: the same after subtracting what central "
                     f"differences resolve ({BELOW_RESOLUTION}: nothing left)")
        return "\n".join(lines)

    def explain(self, threshold: float | None = None, top: int = 5) -> str:
        """The ``top`` worst entries of each tensor whose judged error exceeds ``threshold``
        (of every tensor if None): where, the analytic and numeric values, their absolute
        and relative difference. A wrong border or a wrong channel shows in the indices."""
        lines = []
        for r in self.rows:
            if threshold is not None and r.max_error <= threshold:
                continue
            lines.append(f"{r.name} {r.shape}: its {min(top, len(r.worst_entries))} worst comparisons "
                         f"(judged error {format_judged(r.max_error)})")
            lines.append(f"  {'where':<22}{'analytic':>14}{'numeric':>14}{'abs error':>11}{'rel error':>11}")
            for e in r.worst_entries[:top]:
                lines.append(f"  {e.place:<22}{e.analytic:>14.6g}{e.numeric:>14.6g}{e.abs_error:>11.2e}"
                             f"{e.rel_error:>11.2e}")
        return "\n".join(lines) if lines else "every tensor is within the threshold"


def rel_error(a, n, resolution=0.0):
    """Elementwise max(|a - n| - resolution, 0) / max(|a| + |n|, 1e-8)."""
    return np.maximum(np.abs(a - n) - resolution, 0.0) / np.maximum(np.abs(a) + np.abs(n), FLOOR)


def _resolution(fp, fm, h):
    """What central differences can resolve: 16 ulp of the larger |term| sum, over 2h."""
    return 16 * float(np.spacing(max(abs(fp[1]), abs(fm[1])))) / (2 * h)


class _Chain:
    """Several layers/models run one after the other (for checking G followed by D)."""

    def __init__(self, parts):
        self.parts = list(parts)

    def forward(self, x, training=True, keep_cache=None):
        for p in self.parts:
            x = p.forward(x, training=training, keep_cache=keep_cache)
        return x

    def backward(self, dy, need_param_grads=True):
        for p in reversed(self.parts):
            dy = p.backward(dy, need_param_grads=need_param_grads)
        return dy


def _layers(target):
    if isinstance(target, _Chain):
        return [l for p in target.parts for l in _layers(p)]
    return list(getattr(target, "layers", [target]))


def _named_params(target):
    """[(display name, layer, key)] for every trainable array of the target."""
    out = []
    layers = _layers(target)
    for i, layer in enumerate(layers):
        for key in layer.params:
            out.append((f"{i}:{layer.name}/{key}" if len(layers) > 1 else key, layer, key))
    return out


def gradcheck(target, x, dy=None, *, training=True, h=H, max_elements=64, directions=8, seed=0):
    """Compare ``target``'s backward with central differences; returns a GradcheckReport.

    target: a Layer, a Sequential, or a list of them run in sequence (e.g. [G, D]).
    x: input; dy: upstream gradient (default: standard normal, fixed by ``seed``).
    training: mode of the forward (BatchNorm statistics, Dropout).
    Tensors with at most ``max_elements`` entries are checked entry by entry,
    larger ones along ``directions`` random unit directions (plus ``max_elements``
    random entries).
    """
    if isinstance(target, (list, tuple)):
        target = _Chain(target)
    model = copy.deepcopy(target)
    for layer in _layers(model):
        layer.astype(np.float64)
    xp = backend_module()  # on the cupy backend the whole check runs on the GPU
    x = xp.array(to_host(x), dtype=np.float64)  # a float64 copy
    # Salted, so that dy never repeats a stream the caller drew x from with the same seed
    # (dy proportional to x would make BatchNorm's true dx zero).
    rng = np.random.default_rng([seed, 0x5C6A])

    rng_states = None

    def run(inp, keep):
        for layer, state in zip(_layers(model), rng_states):
            layer.rng.bit_generator.state = copy.deepcopy(state)
        return model.forward(inp, training=training, keep_cache=keep)

    # Build (a first forward) before remembering the random streams.
    model.forward(x, training=training, keep_cache=False)
    rng_states = [copy.deepcopy(l.rng.bit_generator.state) for l in _layers(model)]
    y = run(x, False)
    if dy is None:
        dy = rng.standard_normal(y.shape)
    dy = like(to_host(dy), y, dtype=np.float64)
    if dy.shape != y.shape:
        raise UsageError(f"dy has shape {dy.shape}, expected the output's shape {y.shape}")

    def f(inp):
        """(f, sum of |terms|): the value and the scale of its rounding error."""
        terms = run(inp, False) * dy
        return to_float(terms.sum()), to_float(abs(terms).sum())

    for layer in _layers(model):
        layer.zero_grad()
    run(x, True)
    dx = model.backward(dy)

    report = GradcheckReport(target=_describe(target))
    report.rows.append(_check_tensor("x (input)", x, dx, lambda: f(x), h, max_elements, directions, rng))
    for name, layer, key in _named_params(model):
        grad = layer.grads[key]
        if grad is None:
            raise AssertionError(f"{name}: backward left no gradient")
        report.rows.append(_check_tensor(name, layer.params[key], grad, lambda: f(x), h, max_elements, directions, rng))
    return report


def gradcheck_loss(loss, prediction, target, *, h=H, seed=0, max_elements=64, directions=8):
    """Check a loss object's backward (dL/dprediction) against central differences."""
    loss = copy.deepcopy(loss)
    p = np.array(prediction, dtype=np.float64)
    t = np.asarray(target)
    t = t.astype(np.float64) if t.dtype.kind == "f" else t  # integer class labels stay integers
    loss.forward(p, t)
    grad = loss.backward()
    options = f"(from_logits={loss.from_logits})" if hasattr(loss, "from_logits") else ""
    report = GradcheckReport(target=f"{type(loss).__name__}{options}")
    report.rows.append(
        _check_tensor("prediction", p, grad, lambda: (loss.forward(p, t),) * 2, h, max_elements, directions,
                      np.random.default_rng(seed))
    )
    return report


def _check_tensor(name, value, analytic, f, h, max_elements, directions, rng):
    """Perturb ``value`` in place (restoring it) and compare dF/dvalue with ``analytic``."""
    if analytic.shape != value.shape:
        raise AssertionError(f"{name}: gradient has shape {analytic.shape}, the tensor {value.shape}")
    flat = value.reshape(-1)  # a view: perturbing it perturbs the tensor the model reads
    h = h * max(1.0, math.sqrt(to_float((flat * flat).mean())))
    gflat = analytic.reshape(-1)
    if flat.size <= max_elements:
        idx = np.arange(flat.size)
    else:
        idx = rng.choice(flat.size, size=max_elements, replace=False)

    def central_difference(set_value):
        """(numerical derivative, its resolution) from f at set_value(+h) and set_value(-h)."""
        set_value(+h)
        fp = f()
        set_value(-h)
        fm = f()
        set_value(0.0)
        return (fp[0] - fm[0]) / (2 * h), _resolution(fp, fm, h)

    errors, raw, compared = [], [], []
    for i in idx:
        old = flat[i]

        def move_element(step, i=i, old=old):
            flat[i] = old + step

        numeric, res = central_difference(move_element)
        analytic_i = to_float(gflat[i])
        errors.append(rel_error(analytic_i, numeric, res))
        raw.append(rel_error(analytic_i, numeric))
        compared.append(ElementCheck(np.unravel_index(int(i), value.shape), analytic_i, numeric,
                                     abs(analytic_i - numeric), float(raw[-1])))
    mode, checks = ("element" if len(idx) == 1 else "elements"), len(idx)  # printed after the count
    if flat.size > max_elements:
        original = flat.copy()
        for k in range(directions):
            u = rng.standard_normal(flat.size)
            u = like(u / np.linalg.norm(u), flat)

            def move_along_u(step, u=u):
                flat[:] = original + step * u

            numeric, res = central_difference(move_along_u)
            along_u = to_float(gflat @ u)
            errors.append(rel_error(along_u, numeric, res))
            raw.append(rel_error(along_u, numeric))
            compared.append(ElementCheck(f"direction {k + 1}", along_u, numeric, abs(along_u - numeric), float(raw[-1])))
        mode = f"el.+{directions} dir."
    # worst first: by judged error, then by raw error (most judged errors are 0)
    order = sorted(range(len(compared)), key=lambda j: (float(errors[j]), compared[j].rel_error), reverse=True)
    return TensorCheck(name, tuple(value.shape), mode, checks, float(np.max(errors)), float(np.max(raw)),
                       [compared[j] for j in order[:WORST_KEPT]])


def _describe(target):
    if isinstance(target, _Chain):
        return " -> ".join(_describe(p) for p in target.parts)
    if hasattr(target, "layers"):
        return f"{getattr(target, 'name', type(target).__name__)} ({counted(len(target.layers), 'layer')})"
    return repr(target)
