"""One thread pool for everything: the mlp with its GEMMs on Numba's own threads, against the backend as it is.

    python3 examples/gemm_on_numba_threads.py --rounds 3

The numba backend leaves the mlp's GEMMs to OpenBLAS's threads and runs its kernels on one
thread (docs/performance.md, "One thread pool"). This script measures the other way the
two thread pools could stop fighting: one pool, Numba's OpenMP threads, for both. Every
GEMM of the Dense layers (``gemm.product``) runs as ``--parts`` row (or column) blocks in a
``prange``, each block one single-threaded ``sgemm`` of NumPy's own OpenBLAS, called
through ctypes; OpenBLAS is held to one thread for the whole process, so its threads
never run, and OpenMP's threads spin between parallel regions (``OMP_WAIT_POLICY=ACTIVE``)
so that waking them costs nothing. Kernels go parallel from ``--kernel-min`` elements.

Each variant is a fresh process (OpenMP reads its wait policy when its threads start), in
alternating turns; each times ``--iterations`` training iterations on random data after a
warm-up and prints milliseconds per iteration. It needs a NumPy whose BLAS exports a CBLAS
``sgemm`` it can find (OpenBLAS wheels do: ``scipy_cblas_sgemm64_`` in NumPy 2's); it says
so and stops where there is none. Nothing here changes the library.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import time

import numpy as np

#: CBLAS sgemm symbols, and whether their integers are 64-bit, tried in this order
SYMBOLS = (("scipy_cblas_sgemm64_", True), ("cblas_sgemm64_", True), ("cblas_sgemm", False))
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def find_sgemm():
    """NumPy's BLAS's CBLAS sgemm as a ctypes function, or None where it exports none known."""
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("user_api") != "blas":
            continue
        library = ctypes.CDLL(pool["filepath"])
        for name, wide in SYMBOLS:
            if hasattr(library, name):
                function = getattr(library, name)
                integer = ctypes.c_int64 if wide else ctypes.c_int
                function.argtypes = [ctypes.c_int] * 3 + [integer] * 3 + [ctypes.c_float, ctypes.c_void_p, integer,
                                                                          ctypes.c_void_p, integer, ctypes.c_float,
                                                                          ctypes.c_void_p, integer]
                function.restype = None
                return function
    return None


def make_split_product(sgemm):
    """product(a, b) -> a @ b for 2-D float32 operands that are C- or F-contiguous (a
    transposed view), as ``parts`` blocks of rows (or of columns, for a wide result) on
    Numba's threads, each one sgemm call."""
    from numba import njit, prange

    @njit(parallel=True, nogil=True)
    def blocks(pa, ta, lda, pb, tb, ldb, pc, m, n, k, parts, by_rows):
        one, zero = np.float32(1.0), np.float32(0.0)
        for t in prange(parts):
            if by_rows:  # rows lo:hi of C from rows lo:hi of op(A)
                lo, hi = t * m // parts, (t + 1) * m // parts
                shift = lo if ta == TRANS else lo * lda
                sgemm(ROW_MAJOR, ta, tb, hi - lo, n, k, one, pa + 4 * shift, lda, pb, ldb, zero, pc + 4 * lo * n, n)
            else:  # columns lo:hi of C from columns lo:hi of op(B)
                lo, hi = t * n // parts, (t + 1) * n // parts
                shift = lo * ldb if tb == TRANS else lo
                sgemm(ROW_MAJOR, ta, tb, m, hi - lo, k, one, pa, lda, pb + 4 * shift, ldb, zero, pc + 4 * lo, n)

    def operand(a):
        if a.dtype != np.float32 or a.ndim != 2:
            raise ValueError(f"float32 matrices only, got {a.dtype} of shape {a.shape}")
        if a.flags.c_contiguous:
            return a.ctypes.data, NO_TRANS, max(a.shape[1], 1)
        if a.flags.f_contiguous:
            return a.ctypes.data, TRANS, max(a.shape[0], 1)
        raise ValueError("operands must be C- or F-contiguous")

    def product(a, b, parts=2):
        (m, k), n = a.shape, b.shape[1]
        if b.shape[0] != k:
            raise ValueError(f"cannot multiply {a.shape} by {b.shape}")
        out = np.empty((m, n), np.float32)
        if m == 0 or n == 0:
            return out
        if k == 0:
            out[...] = 0
            return out
        (pa, ta, lda), (pb, tb, ldb) = operand(a), operand(b)
        by_rows = m >= n
        parts = max(1, min(parts, m if by_rows else n))
        blocks(pa, ta, lda, pb, tb, ldb, out.ctypes.data, m, n, k, parts, by_rows)
        return out

    return product


def worker(variant: str, iterations: int, parts: int, kernel_min: int) -> float:
    """ms per mlp iteration in this process, with the variant's GEMMs and threads."""
    from scratchgan import backend, train, zoo

    backend.set_backend("numba")
    if variant == "one-pool":
        from threadpoolctl import ThreadpoolController

        from scratchgan.kernels.numba import gemm, threads

        sgemm = find_sgemm()
        ThreadpoolController().limit(limits=1, user_api="blas")  # OpenBLAS's threads never run
        split = make_split_product(sgemm)
        threads.PARALLEL_MIN_WORK = kernel_min

        def product(a, b):  # every Dense GEMM on all of Numba's threads (threads_for keeps the count)
            threads.threads_for(threads.NEVER)
            return split(a, b, parts)

        gemm.product = product
    generator, discriminator, recipe = zoo.build("mlp", seed=0)
    data = np.random.default_rng(0).uniform(-1, 1, (10_000, 28, 28, 1)).astype(np.float32)
    trainer = train.GANTrainer(generator, discriminator, recipe, data, seed=0)
    for _ in range(max(iterations // 4, 20)):
        trainer.advance()
    start = time.perf_counter()
    for _ in range(iterations):
        trainer.advance()
    return 1000 * (time.perf_counter() - start) / iterations


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--parts", type=int, default=2, help="blocks per GEMM (default 2)")
    parser.add_argument("--kernel-min", type=int, default=1 << 16,
                        help="kernels go parallel from this many elements in the one-pool variant (default 65536)")
    parser.add_argument("--worker", choices=("as-is", "one-pool"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.rounds, args.iterations, args.parts) < 1 or args.kernel_min < 0:
        parser.error("--rounds, --iterations and --parts must be at least 1, --kernel-min at least 0")
    if args.worker:
        print(f"{worker(args.worker, args.iterations, args.parts, args.kernel_min):.4f}")
        return 0
    if find_sgemm() is None:
        print("NumPy's BLAS here exports no CBLAS sgemm this script knows "
              f"({', '.join(name for name, _ in SYMBOLS)}): nothing to measure")
        return 1
    print(f"mlp, ms per iteration ({args.iterations} iterations a turn); one-pool: GEMMs as {args.parts} blocks "
          f"on Numba's threads, OMP_WAIT_POLICY=ACTIVE, kernels parallel from {args.kernel_min} elements")
    for round_ in range(1, args.rounds + 1):
        times = {}
        for variant in ("as-is", "one-pool"):
            env = dict(os.environ)
            if variant == "one-pool":
                env["OMP_WAIT_POLICY"] = "ACTIVE"
            command = [sys.executable, __file__, "--worker", variant, "--iterations", str(args.iterations),
                       "--parts", str(args.parts), "--kernel-min", str(args.kernel_min)]
            done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            times[variant] = float(done.stdout.split()[-1])
        print(f"round {round_}: as-is {times['as-is']:.2f}, one-pool {times['one-pool']:.2f}: "
              f"one-pool is {times['as-is'] / times['one-pool']:.2f}x as fast", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
