"""``scratchgan bench --ranks 1 2 4``: data-parallel training speed over MPI ranks.

For each model and each rank count N, ``mpiexec -n N`` starts N ranks of this module's
worker (one rank runs without mpiexec); each builds the model, takes two untimed steps
(compilation, first-touch allocation), then times ``iterations`` training iterations of
the recipe's global batch, split across the ranks as ``scratchgan train`` splits it.
Reported per rank count:

* ms per iteration (the median iteration, slowest rank) and images per second over all
  ranks (the global batch G trains on per iteration, divided by that time);
* speedup against the smallest rank count of the run;
* the share of an iteration spent in collectives: the time inside this rank's
  Allreduce calls (gradients, batch-norm statistics, the losses, the stop flag),
  which includes waiting for slower ranks, over the iteration's time; mean over ranks;
* Allreduce calls and megabytes each rank sends per iteration.

Threads: ranks on one machine share its cores. Unless OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS or NUMBA_NUM_THREADS is already set (then the user's value is kept for
every rank count), each rank gets cores // N threads, and the table says how many.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .errors import UsageError

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel's), else the first on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


# --- the worker: one rank ---------------------------------------------------------------------
def worker(model: str, backend_name: str, batch: int | None, iterations: int) -> None:
    """Time ``iterations`` data-parallel iterations; rank 0 prints one JSON line."""
    from . import backend, zoo
    from .distributed import world
    from .train import GANTrainer

    backend.set_backend(backend_name)
    here = world()
    if here.size > 1 and backend_name == "cupy":
        from .nccl import attach_gpus

        attach_gpus(here)
    g, d, recipe = zoo.build(model, seed=0, world=here)
    if batch:
        recipe.override(batch_size=batch)
    lo, hi = recipe.data_range
    data = np.random.default_rng(0).uniform(lo, hi, (max(4 * recipe.batch_size, 64), *recipe.image_shape))
    trainer = GANTrainer(g, d, recipe, data.astype(np.float32), seed=0, world=here)
    for _ in range(2):
        trainer.step()
    here.collective_calls, here.collective_bytes, here.collective_seconds = 0, 0, 0.0
    step_seconds = []
    for _ in range(iterations):
        start = time.perf_counter()
        trainer.advance()  # the losses kept unread, as train keeps them between reads
        step_seconds.append(time.perf_counter() - start)
    mine = {"median_s": statistics.median(step_seconds), "total_s": sum(step_seconds),
            "collective_s": here.collective_seconds, "calls": here.collective_calls,
            "bytes": here.collective_bytes}
    trainer.metrics.read()
    ranks = here.allgather(mine)
    if here.is_root:
        print(json.dumps({
            "batch": recipe.batch_size,
            "ms_per_iter": 1000 * max(r["median_s"] for r in ranks),
            "collective_share": statistics.mean(r["collective_s"] / r["total_s"] for r in ranks),
            "allreduce_calls_per_iter": ranks[0]["calls"] / iterations,
            "allreduce_mb_per_iter": ranks[0]["bytes"] / iterations / 1e6,
        }), flush=True)


# --- the parent -------------------------------------------------------------------------------
def _thread_env(ranks: int) -> tuple[dict, str]:
    """The workers' environment and a description of their threads per rank."""
    env = dict(os.environ)
    users = {v: env[v] for v in THREAD_VARIABLES if env.get(v)}
    if users:
        return env, ", ".join(f"{k}={v}" for k, v in users.items()) + " (yours)"
    threads = max(1, (os.cpu_count() or 1) // ranks)
    env.update({v: str(threads) for v in THREAD_VARIABLES})
    return env, str(threads)


def run_ranks(model: str, backend_name: str, batch: int | None, ranks: int, iterations: int,
              mpiexec: str | None, timeout: float = 3600) -> dict:
    """One model at one rank count: the root rank's JSON report, plus the threads used."""
    cmd = [sys.executable, "-m", "scratchgan.bench_ranks", "--worker", model, backend_name, str(batch or 0),
           str(iterations)]
    if ranks > 1:
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    env, threads = _thread_env(ranks)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{model} on {ranks} rank(s) failed (exit code {done.returncode}):\n"
                           f"{done.stderr.strip()[-2000:]}")
    return {**json.loads(lines[-1]), "ranks": ranks, "threads": threads}


def run(ranks, models=None, backend_name=None, iterations=None, batch_sizes=None, as_json=False, out=print):
    """Bench every model (or ``models``) at every rank count in ``ranks``; print a table or JSON."""
    from . import zoo
    from .backend import BackendError, set_backend

    ranks = sorted(set(ranks))
    mpiexec = find_mpiexec()
    if max(ranks) > 1:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            mpiexec = None
        if mpiexec is None:
            raise UsageError("--ranks above 1 needs mpi4py and an mpiexec: pip install 'scratchgan[mpi]' "
                               "(it brings MPICH's mpiexec), or mpi4py built against your system MPI")
    if backend_name is None:
        try:
            set_backend("numba")
            backend_name = "numba"
        except BackendError:
            backend_name = "numpy"
        finally:
            set_backend("numpy")
    models = list(models or zoo.MODELS)
    unknown = [m for m in models if m not in zoo.MODELS]
    if unknown:
        raise UsageError(f"unknown model {unknown[0]!r}: available models are {', '.join(zoo.MODELS)}")
    report = {"backend": backend_name, "cpu_count": os.cpu_count(), "ranks": ranks, "results": []}
    if not as_json:
        out(f"MPI ranks on this machine ({os.cpu_count()} cores), backend {backend_name}; per rank count: "
            f"median iteration (slowest rank), images per second over all ranks, speedup against "
            f"{ranks[0]} rank(s), share of the iteration inside Allreduce (mean over ranks)")
        out("\n| model | batch | ranks | threads per rank | ms/iter | images/s | speedup | in collectives "
            "| Allreduce calls/iter | MB sent per rank/iter |")
        out("|---|---|---|---|---|---|---|---|---|---|")
    for model in models:
        for batch in batch_sizes or [None]:
            n = iterations or (100 if model == "mlp" else 3)
            first = None
            for count in ranks:
                result = {"model": model, **run_ranks(model, backend_name, batch, count, n, mpiexec)}
                first = first or result
                result["images_per_s"] = result["batch"] / (result["ms_per_iter"] / 1000)
                result["speedup"] = first["ms_per_iter"] / result["ms_per_iter"]
                report["results"].append(result)
                if not as_json:
                    out(f"| {model} | {result['batch']} | {count} | {result['threads']} | "
                        f"{result['ms_per_iter']:,.1f} | {result['images_per_s']:,.{0 if result['images_per_s'] >= 100 else 1}f} | "
                        f"{result['speedup']:.2f}x | "
                        f"{100 * result['collective_share']:.1f}% | {result['allreduce_calls_per_iter']:g} | "
                        f"{result['allreduce_mb_per_iter']:.2f} |")
    if as_json:
        out(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]) or None, int(sys.argv[5]))
    else:
        sys.exit("usage: scratchgan bench --ranks 1 2 (this module's --worker mode is for the bench itself)")
