"""Allreduce speed between MPI ranks, and where each zoo model stops scaling, on paper.

    mpiexec -n 2 python3 examples/mpi_scaling.py                     # measure, then the table
    python3 examples/mpi_scaling.py --bench bench.json               # step times from `scratchgan bench --json`

Under mpiexec it times an in-place Allreduce(SUM) of float32 buffers of several sizes
(best of 5, after a warm-up), as the trainer sums gradients. Then it models a step of
each zoo model on N nodes, the global batch fixed and the compute divided perfectly by N:

    T(N) = T1 / N  +  k * 2(N-1) * alpha  +  2(N-1)/N * bytes / beta

with T1 the one-node step (the numba column of a `scratchgan bench --json` report, or the
README's figures), k the collectives per step, bytes the gradients summed per step (4 per
float32 parameter: D once per D update, G once), alpha the per-message latency and beta
the network bandwidth (a ring Allreduce moves 2(N-1)/N of the buffer through each node).
It prints, for 10 and 100 Gb/s, the node count where the speedup falls below half of N,
and the speedups at 8 and 64 nodes.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from scratchgan import zoo
from scratchgan.distributed import world

#: numba ms per iteration from the README's bench run (used without --bench)
STEP_MS = {"mlp": 10.9, "dcgan_bn": 1751, "dcgan_upsample": 1565, "dcgan": 1614, "cifar_frog": 5550}
ALPHA_S = 10e-6
NETWORKS_GBPS = (10, 100)


def measure_allreduce(ranks) -> None:
    for count in (1, 2_000, 200_000, 2_000_000, 20_000_000):
        buf = np.ones(count, dtype=np.float32)
        ranks.allreduce_sum(buf)
        best = float("inf")
        for _ in range(5):
            ranks.comm.Barrier()
            start = time.perf_counter()
            ranks.allreduce_sum(buf)
            best = min(best, time.perf_counter() - start)
        if ranks.is_root:
            print(f"Allreduce of {buf.nbytes:>11,} bytes on {ranks.size} ranks: {best * 1e6:9.1f} us, "
                  f"{buf.nbytes / best / 1e9:5.2f} GB/s")


def per_step(model: str):
    """(gradient bytes summed per iteration, collectives per iteration) of a zoo model's recipe."""
    g, d, recipe = zoo.build(model, seed=0)
    g_params = sum(int(v.size) for v in g.params.values())
    d_params = sum(int(v.size) for v in d.params.values())
    d_updates = recipe.d_steps * (2 if recipe.d_mode == "separate" else 1)
    d_passes = recipe.d_steps * (1 if recipe.d_mode == "concat" else 2)
    norms = sum(type(layer).__name__ == "BatchNormalization" for m in (g, d) for layer in m.layers)
    # gradient sums, the loss sums (one per D pass and one for G), the stop check,
    # and two per batch-norm layer per forward-backward it takes part in (counted once per pass)
    collectives = d_updates + 1 + d_passes + 1 + 1 + 2 * norms * (d_passes + 1)
    return 4 * (d_updates * d_params + g_params), collectives


def table(step_ms) -> None:
    print("| model | step on one node | gradients per iteration | " + " | ".join(
        f"{gb} Gb/s: nodes at 50% efficiency | speedup at 8 / 64 nodes" for gb in NETWORKS_GBPS) + " |")
    print("|---|---|---|" + "---|---|" * len(NETWORKS_GBPS))
    for model, ms in step_ms.items():
        nbytes, k = per_step(model)
        t1 = ms / 1e3
        row = [model, f"{ms:,.0f} ms", f"{nbytes / 1e6:.1f} MB"]
        for gb in NETWORKS_GBPS:
            beta = gb / 8 * 1e9

            def step(n, t1=t1, beta=beta):
                return t1 / n + k * 2 * (n - 1) * ALPHA_S + 2 * (n - 1) / n * nbytes / beta

            half = next((n for n in range(2, 10_000) if t1 / step(n) < n / 2), None)
            row += [str(half) if half else ">10,000", f"{t1 / step(8):.1f}x / {t1 / step(64):.1f}x"]
        print("| " + " | ".join(row) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", help="a `scratchgan bench --json` report: its numba step times")
    args = parser.parse_args()
    ranks = world()
    if ranks.size > 1:
        measure_allreduce(ranks)
    if not ranks.is_root:
        return
    step_ms = dict(STEP_MS)
    if args.bench:
        with open(args.bench) as f:
            report = json.load(f)
        step_ms = {m["model"]: m["backends"]["numba"]["ms_per_iter"] for m in report["models"]}
    table(step_ms)


if __name__ == "__main__":
    main()
