"""Measure where a parallel Numba kernel starts to beat a serial one on this machine:
``python3 examples/thread_threshold.py``.

Two element-wise kernels of the numba backend (the fused Adam update and LeakyReLU's
forward) run serially and on all of Numba's threads at sizes from 2^12 to 2^22 elements,
each call preceded by a 128x784x128 GEMM, as in training, where BLAS's threads are
awake between kernels. It prints the median microseconds per call and the smallest size
from which parallel is faster at every size measured: the value to give
SCRATCHGAN_PARALLEL_MIN_WORK ("never" where parallel never wins). ``--no-gemm`` measures
the kernels alone, to see what the GEMM's threads cost them.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from scratchgan import backend
from scratchgan.kernels.numba import activations, optim, threads

#: parallel must be at least this much faster to count as a win (timing noise is a few %)
MARGIN = 0.9


def _median_us(call, gemm, repeats):
    times = []
    for _ in range(repeats):
        gemm()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def measure(sizes, repeats=200, with_gemm=True, seed=0):
    """[(size, {kernel: (serial us, parallel us)})], each kernel timed both ways at each size."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((128, 784), dtype=np.float32), rng.standard_normal((784, 128), dtype=np.float32)
    gemm = (lambda: a @ b) if with_gemm else (lambda: None)
    rows = []
    for n in sizes:
        p, g, m = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
        v = np.abs(rng.standard_normal(n, dtype=np.float32))
        kernels = {"adam_update": lambda: optim.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 10),
                   "leaky_relu_forward": lambda: activations.leaky_relu_forward(p, 0.2)}
        row = {}
        for name, call in kernels.items():
            row[name] = []
            for threshold in (threads.NEVER, 0):  # serial, then parallel
                threads.PARALLEL_MIN_WORK = threshold
                call()  # compiled and warm
                row[name].append(_median_us(call, gemm, repeats))
        rows.append((n, {k: tuple(t) for k, t in row.items()}))
    return rows


def threshold(rows) -> int | None:
    """The smallest size from which parallel beats serial (by MARGIN) for every kernel at
    every larger size measured; None if there is none."""
    wins = [all(par < MARGIN * ser for ser, par in row.values()) for _, row in rows]
    for i in range(len(rows)):
        if all(wins[i:]):
            return rows[i][0]
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-size", type=int, default=1 << 22, help="the largest size (default 2^22)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per size and way (default 200)")
    parser.add_argument("--no-gemm", action="store_true", help="no GEMM between the calls")
    args = parser.parse_args(argv)
    backend.set_backend("numba")
    saved = threads.PARALLEL_MIN_WORK
    sizes = [1 << k for k in range(12, args.max_size.bit_length(), 2)]
    try:
        rows = measure(sizes, args.repeats, with_gemm=not args.no_gemm)
    finally:
        threads.PARALLEL_MIN_WORK = saved
    print(f"median us per call, serial / parallel ({threads._all} Numba threads), "
          f"{'alone' if args.no_gemm else 'after a 128x784x128 GEMM each'}:")
    print(f"{'elements':>10}" + "".join(f"{name:>28}" for name in rows[0][1]))
    for n, row in rows:
        print(f"{n:>10}" + "".join(f"{ser:>13.1f} / {par:<12.1f}" for ser, par in row.values()))
    found = threshold(rows)
    print(f"SCRATCHGAN_PARALLEL_MIN_WORK={found if found is not None else 'never'}"
          f"  (parallel at least {round(100 * (1 / MARGIN - 1))}% faster from there on)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
