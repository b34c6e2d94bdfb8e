"""Run by tests/test_distributed.py under mpiexec: a finite-difference gradient check of
synchronised batch normalisation, in float64, across the ranks.

The global batch x (7 rows, 3 channels, a large mean) is split into the ranks' shares; the
loss is L = sum over ranks of sum(w_r * y_r), w a fixed random weighting. Every numeric
derivative perturbs one number, on the rank that holds it (an x entry) or on every rank
alike (gamma, beta: replicated), and evaluates L on every rank together, since each
forward is a collective. Rank 0 saves the largest relative error of dx, dgamma and dbeta."""
import sys

import numpy as np

from scratchgan.distributed import world
from scratchgan.layers import BatchNormalization

out, h = sys.argv[1], 1e-6
here = world()
rng = np.random.default_rng(0)
x_all = rng.standard_normal((7, 3)) * 2 + 50
w_all = rng.standard_normal((7, 3))
lo, hi = here.rows(len(x_all))
x, w = x_all[lo:hi].copy(), w_all[lo:hi]
layer = BatchNormalization(sync=here)
layer.build((None, 3))
layer.astype(np.float64)
layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 3)
layer.params["beta"][...] = rng.standard_normal(3)
moving = {k: v.copy() for k, v in layer.buffers.items()}


def loss() -> float:
    for key, value in moving.items():  # every evaluation starts from the same moving statistics
        layer.buffers[key][...] = value
    return float(here.allreduce_sum(np.array([np.sum(w * layer.forward(x, training=True))]))[0])


def numeric(array, index, owner: bool) -> float:
    saved = array[index]
    if owner:
        array[index] = saved + h
    plus = loss()
    if owner:
        array[index] = saved - h
    minus = loss()
    array[index] = saved
    return (plus - minus) / (2 * h)


loss()
layer.zero_grad()
dx = layer.backward(w)
analytic = {"gamma": here.allreduce_sum(layer.grads["gamma"].copy()),  # summed over ranks, as the trainer does
            "beta": here.allreduce_sum(layer.grads["beta"].copy())}
errors = {}
dx_all = np.concatenate(here.allgather(dx))
numeric_dx = np.zeros_like(x_all)
for g in range(len(x_all)):
    owner = lo <= g < hi
    for c in range(3):
        numeric_dx[g, c] = numeric(x, (g - lo, c) if owner else (0, c), owner)
errors["dx"] = np.max(np.abs(numeric_dx - dx_all) / np.maximum(np.abs(numeric_dx) + np.abs(dx_all), 1e-8))
for key in ("gamma", "beta"):
    approx = np.array([numeric(layer.params[key], c, True) for c in range(3)])
    errors[key] = np.max(np.abs(approx - analytic[key]) / np.maximum(np.abs(approx) + np.abs(analytic[key]), 1e-8))
if here.is_root:
    np.savez(out, **errors, ranks=here.size)
