"""The gradient checks of every layer, the loss and whole G+D stacks, as one list.

``scratchgan gradcheck`` prints them as a table; the test suite runs the same list.
Thresholds (max relative error): smooth layers 1e-7, kinked layers (LeakyReLU, ReLU,
MaxPool; inputs kept at least 1e3*h from the kink and pools free of ties) 1e-6,
whole generator/discriminator stacks 1e-5.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import layers as L
from .gradcheck import BELOW_RESOLUTION, format_judged, gradcheck, gradcheck_loss
from .layers.base import glorot_limit
from .losses import BinaryCrossentropy, SoftmaxCrossentropy
from .models import Sequential
from .xp import like

THRESHOLDS = {"smooth": 1e-7, "kinked": 1e-6, "stack": 1e-5}


@dataclass
class Case:
    name: str
    make: object  # () -> Layer | Sequential | list of them
    input_shape: tuple
    kind: str = "smooth"
    training: bool = True
    inputs: str = "normal"  # normal | shifted | away_from_kink | tie_free | latent
    options: dict = field(default_factory=dict)

    @property
    def threshold(self):
        return THRESHOLDS[self.kind]


def make_input(case: Case, rng):
    shape = case.input_shape
    if case.inputs == "shifted":  # BatchNorm: mean and scale far from 0 and 1
        return 5 * rng.standard_normal(shape) + 12
    if case.inputs == "away_from_kink":  # |x| >= 0.1 >> 1e3 * h
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 1.0, size=shape)
    if case.inputs == "tie_free":  # a shuffled linspace: every value distinct, spacing >> h
        n = int(np.prod(shape))
        return rng.permutation(np.linspace(-1, 1, n)).reshape(shape)
    return rng.standard_normal(shape)


def randomize(target, rng):
    """Random parameters and moving statistics drawn from ``rng`` (zeros and ones hide
    mistakes). Kernels are redrawn within their Glorot limits, which keeps deep stacks
    out of saturation."""
    parts = target if isinstance(target, (list, tuple)) else [target]
    for part in parts:
        for layer in getattr(part, "layers", [part]):
            for key, value in layer.params.items():
                if key == "gamma":
                    value[...] = like(rng.uniform(0.5, 1.5, value.shape), value)
                elif key == "kernel":
                    value[...] = like(glorot_limit(value.shape) * rng.uniform(-1, 1, value.shape), value)
                else:
                    value[...] = like(0.5 * rng.standard_normal(value.shape), value)
            if "moving_mean" in layer.buffers:
                mean, var = layer.buffers["moving_mean"], layer.buffers["moving_variance"]
                mean[...] = like(rng.standard_normal(mean.shape), mean)
                var[...] = like(rng.uniform(0.5, 2.0, var.shape), var)


def build_target(target, input_shape):
    """Build a layer, model or list of them for inputs of ``input_shape``; returns it."""
    parts = target if isinstance(target, (list, tuple)) else [target]
    shape = (None, *input_shape[1:])
    for part in parts:
        shape = part.build(shape)
    return target


def _conv_generator():
    return Sequential([
        L.Dense(2 * 2 * 3), L.BatchNormalization(), L.LeakyReLU(0.2), L.Reshape((2, 2, 3)),
        L.Conv2DTranspose(3, 3, strides=2, padding="same"), L.BatchNormalization(), L.LeakyReLU(0.2),
        L.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh"),
    ], name="conv_generator")


def _conv_discriminator():
    return Sequential([
        L.Conv2D(3, 3, strides=2, padding="same"), L.LeakyReLU(0.2), L.Dropout(0.3, seed=0),
        L.Conv2D(4, 3, strides=1, padding="valid", activation="tanh"), L.MaxPooling2D(1),
        L.Flatten(), L.Dense(1, activation="sigmoid"),
    ], name="conv_discriminator")


def _upsample_generator():
    return Sequential([
        L.Dense(12, activation="tanh"), L.Dense(2 * 2 * 4), L.BatchNormalization(), L.Activation("tanh"),
        L.Reshape((2, 2, 4)), L.UpSampling2D(2), L.Conv2D(3, 3, padding="same", activation="tanh"),
        L.UpSampling2D(2), L.Conv2D(1, 3, padding="same", activation="tanh"),
    ], name="upsample_generator")


def _mlp_pair():
    from .zoo import mlp

    g, d, _ = mlp(seed=0)
    return [g, d]


CASES = [
    Case("Dense(5)", lambda: L.Dense(5), (4, 7)),
    Case("Dense(3, tanh)", lambda: L.Dense(3, activation="tanh"), (3, 6)),
    Case("Dense(1, sigmoid), batch 1", lambda: L.Dense(1, activation="sigmoid"), (1, 9)),
    Case("Dense(4, no bias)", lambda: L.Dense(4, use_bias=False), (2, 5)),
    Case("Conv2D k3 s1 same", lambda: L.Conv2D(3, 3, padding="same"), (2, 5, 5, 2)),
    Case("Conv2D k3 s2 same, odd 7x8", lambda: L.Conv2D(3, 3, strides=2, padding="same"), (2, 7, 8, 2)),
    Case("Conv2D k4 s2 same, odd pad", lambda: L.Conv2D(2, 4, strides=2, padding="same"), (1, 7, 6, 2)),
    Case("Conv2D k5 s2 same, batch 1", lambda: L.Conv2D(2, 5, strides=2, padding="same"), (1, 7, 8, 2)),
    Case("Conv2D k4 s2 valid", lambda: L.Conv2D(3, 4, strides=2, padding="valid"), (2, 9, 9, 3)),
    Case("Conv2D k2x3 s3 valid", lambda: L.Conv2D(2, (2, 3), strides=3, padding="valid"), (1, 8, 10, 2)),
    Case("Conv2D k1 s2 same", lambda: L.Conv2D(2, 1, strides=2, padding="same"), (2, 5, 5, 3)),
    Case("Conv2D k3 tanh", lambda: L.Conv2D(2, 3, padding="same", activation="tanh"), (1, 4, 5, 2)),
    Case("Conv2DTranspose k3 s2 same", lambda: L.Conv2DTranspose(2, 3, strides=2, padding="same"), (1, 5, 4, 3)),
    Case("Conv2DTranspose k4 s2 same", lambda: L.Conv2DTranspose(3, 4, strides=2, padding="same"), (2, 3, 3, 2)),
    Case("Conv2DTranspose k5 s1 same", lambda: L.Conv2DTranspose(2, 5, strides=1, padding="same"), (1, 4, 4, 2)),
    Case("Conv2DTranspose k3 s2 valid", lambda: L.Conv2DTranspose(2, 3, strides=2, padding="valid"), (2, 3, 4, 2)),
    Case("Conv2DTranspose k2 s3 valid", lambda: L.Conv2DTranspose(2, 2, strides=3, padding="valid"), (1, 3, 2, 2)),
    Case("Conv2DTranspose k1 s2 same", lambda: L.Conv2DTranspose(2, 1, strides=2, padding="same"), (2, 3, 3, 2)),
    Case("BatchNorm dense, training", lambda: L.BatchNormalization(), (16, 6), inputs="shifted"),
    Case("BatchNorm image, training", lambda: L.BatchNormalization(), (4, 5, 5, 3), inputs="shifted"),
    Case("BatchNorm image, training, batch 1", lambda: L.BatchNormalization(), (1, 3, 3, 2), inputs="shifted"),
    Case("BatchNorm dense, inference", lambda: L.BatchNormalization(), (5, 4), training=False, inputs="shifted"),
    Case("BatchNorm image, inference", lambda: L.BatchNormalization(), (2, 3, 3, 3), training=False, inputs="shifted"),
    Case("Activation tanh", lambda: L.Activation("tanh"), (3, 7)),
    Case("Activation sigmoid", lambda: L.Activation("sigmoid"), (2, 3, 3, 2)),
    Case("Activation linear", lambda: L.Activation("linear"), (3, 4)),
    Case("LeakyReLU(0.2)", lambda: L.LeakyReLU(0.2), (3, 4, 4, 2), kind="kinked", inputs="away_from_kink"),
    Case("LeakyReLU() slope 0.3", lambda: L.LeakyReLU(), (5, 6), kind="kinked", inputs="away_from_kink"),
    Case("ReLU", lambda: L.ReLU(), (4, 5), kind="kinked", inputs="away_from_kink"),
    Case("Activation relu", lambda: L.Activation("relu"), (4, 5), kind="kinked", inputs="away_from_kink"),
    Case("MaxPooling2D(2)", lambda: L.MaxPooling2D(2), (2, 8, 8, 3), kind="kinked", inputs="tie_free"),
    Case("MaxPooling2D(2), odd 7x9", lambda: L.MaxPooling2D(2), (1, 7, 9, 2), kind="kinked", inputs="tie_free"),
    Case("MaxPooling2D(3, s2, same)", lambda: L.MaxPooling2D(3, strides=2, padding="same"), (1, 7, 6, 2),
         kind="kinked", inputs="tie_free"),
    Case("UpSampling2D(2)", lambda: L.UpSampling2D(2), (2, 3, 4, 2)),
    Case("UpSampling2D((2, 3))", lambda: L.UpSampling2D((2, 3)), (1, 3, 2, 3)),
    Case("Dropout(0.4), training", lambda: L.Dropout(0.4, seed=1), (4, 6)),
    Case("Dropout(0.4), inference", lambda: L.Dropout(0.4, seed=1), (4, 6), training=False),
    Case("Flatten", lambda: L.Flatten(), (2, 3, 4, 5)),
    Case("Reshape((2, 6))", lambda: L.Reshape((2, 6)), (3, 12)),
    Case("mlp G -> D (the zoo's, seed 0)", _mlp_pair, (3, 100), kind="stack"),
    Case("conv G (BN, transposed) -> D", lambda: [_conv_generator(), _conv_discriminator()], (4, 5), kind="stack"),
    Case("upsampling G (BN, tanh)", _upsample_generator, (3, 6), kind="stack"),
    Case("conv D alone, inference", _conv_discriminator, (2, 8, 8, 1), kind="stack", training=False),
]


def run_case(case: Case, seed: int = 0):
    rng = np.random.default_rng([seed, sum(map(ord, case.name))])
    target = build_target(case.make(), case.input_shape)
    randomize(target, rng)
    x = make_input(case, rng)
    return gradcheck(target, x, training=case.training, seed=seed, **case.options)


LOSS_CASES = [
    ("BCE on probabilities, hard targets", False, "hard"),
    ("BCE on probabilities, soft targets", False, "soft"),
    ("BCE on logits, noisy targets", True, "soft"),
    ("softmax cross-entropy (classifier)", None, "classes"),
]


def run_loss_case(name, from_logits, targets, seed=0):
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    if targets == "classes":  # logits (7, 10) and integer labels
        return gradcheck_loss(SoftmaxCrossentropy(), rng.normal(0, 3, (7, 10)), rng.integers(0, 10, 7), seed=seed)
    shape = (7, 1)
    p = rng.normal(0, 3, shape) if from_logits else rng.uniform(0.05, 0.95, shape)
    t = rng.integers(0, 2, shape).astype(float) if targets == "hard" else rng.uniform(0, 1, shape)
    return gradcheck_loss(BinaryCrossentropy(from_logits=from_logits), p, t, seed=seed)


def run_suite(seed: int = 0, out=print):
    """Print one row per check; returns the names of the checks that failed.

    Each row shows the tensor with the largest raw error, its raw error, the judged error
    (what the limit applies to; "< resol." where every difference was below what central
    differences resolve) and the limit."""
    failures = []
    out(f"{'check':<40}{'mode':<11}{'worst tensor (raw)':<26}{'raw error':>10}{'judged':>10}{'limit':>8}  ok")
    rows = [(c.name, "train" if c.training else "inference", c.threshold, lambda c=c: run_case(c, seed)) for c in CASES]
    rows += [(n, "-", THRESHOLDS["smooth"], lambda a=(n, fl, t): run_loss_case(*a, seed=seed)) for n, fl, t in LOSS_CASES]
    below = 0
    explanations = []
    for name, mode, limit, run in rows:
        report = run()
        worst = report.worst
        ok = report.max_error < limit
        if not ok:
            failures.append(name)
            explanations.append(f"{name}:\n{report.explain(threshold=limit)}")
        below += report.max_error == 0.0
        out(f"{name:<40}{mode:<11}{worst.name[:25]:<26}{worst.raw_error:>10.1e}"
            f"{format_judged(report.max_error):>10}{limit:>8.0e}  {'yes' if ok else 'NO'}")
    out(f"{len(rows) - len(failures)} of {len(rows)} checks passed (float64, central differences, h = 1e-5 x scale)")
    out("raw: cs231n's relative error |a - n| / max(|a| + |n|, 1e-8), analytic a against numerical n, the worst")
    out("  over every tensor and entry or direction checked; it is large only where the true gradient is ~0.")
    out("judged: the same after subtracting what central differences can resolve (16 ulp of sum |y*dy|, over 2h);")
    out(f"  {BELOW_RESOLUTION} ({below} of {len(rows)} checks): every difference was below that resolution, so the")
    out("  backward agrees with the finite differences as closely as float64 can show. The limit applies to it.")
    for text in explanations:  # where each failing check went wrong
        out("")
        out(text)
    return failures


def load_layer_class(spec: str):
    """The class ``spec`` names: "path/to/file.py:Class" or "package.module:Class" (a module
    found from the current folder too). It runs that file's code: name your own."""
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    from .errors import UsageError
    from .layers.base import Layer

    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise UsageError(f"--layer {spec!r}: expected MODULE:CLASS, e.g. my_layers.py:Blur or my_layers:Blur")
    try:
        if where.endswith(".py"):
            found = importlib.util.spec_from_file_location(Path(where).stem, where)
            if found is None or not Path(where).is_file():
                raise UsageError(f"--layer {spec!r}: no file {where}")
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            if str(Path.cwd()) not in sys.path:  # `python3 -m scratchgan` does not put it there
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(where)
    except ImportError as err:
        raise UsageError(f"--layer {spec!r}: cannot import {where} ({err})") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise UsageError(f"--layer {spec!r}: {where} has no Layer subclass named {name}")
    return cls


def check_user_layer(spec: str, input_shape, arguments: dict, seed: int = 0, threshold: float = 1e-7,
                     training: bool = True, out=print) -> bool:
    """Gradient-check ``Class(**arguments)`` of ``spec`` on a standard normal input of
    ``input_shape`` (batch axis first); print the table and, past ``threshold``, the worst
    entries of each failing tensor. Returns whether it passed."""
    layer = load_layer_class(spec)(**arguments)
    x = np.random.default_rng([seed, 7]).standard_normal(tuple(input_shape))
    report = gradcheck(layer, x, training=training, seed=seed)
    out(str(report))
    passed = report.max_error < threshold
    out(f"{'passed' if passed else 'FAILED'}: judged error {format_judged(report.max_error)}, limit {threshold:.0e}")
    if not passed:
        out(report.explain(threshold=threshold))
    return passed
