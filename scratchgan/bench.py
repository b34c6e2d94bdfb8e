"""``scratchgan bench``: per-op and per-model timings, backend against backend (and PyTorch).

Every figure of one table comes from one run, so ratios are meaningful even on a shared
machine whose absolute speed drifts:

* **SGEMM peak**: the best float32 matrix product NumPy's BLAS reaches here (the
  machine's practical peak; every GFLOP/s is also given as a percentage of it).
* **Per model**: one training iteration of the recipe (D steps and the G step), each
  backend in its own worker process, the workers stepped in turn (interleaved) so that
  drift hits all alike. Reported: median ms per iteration, images per second (G's
  batch per iteration), GFLOP/s and % of peak, the time from starting the process to
  the end of its first iteration (imports, kernel compilation or cache loading, first
  step), and the process's peak resident memory. PyTorch (CPU, eager) is a worker too
  when it is installed: examples/pytorch_twin.py builds the same layers. It is never a
  dependency, and the package never imports it.
* **On a GPU** (the cupy backend, when CuPy sees one): the GPU's own SGEMM peak is
  measured with CuPy (cuBLAS, float32), cupy's figures are percentages of it, and
  PyTorch eager on CUDA ("torch-cuda") is the comparison column when PyTorch sees the
  GPU. ``--batch-sizes 64 256 1024`` repeats each model at those batches (throughput
  scaling). GPU timings synchronise the device before reading the clock.
* **Per op**: the ops one iteration calls, by name and argument shapes, each backend's
  median time, GFLOP/s for the dense and convolution ops, and % of the SGEMM peak.

FLOPs count the multiply-adds of dense, convolution and transposed convolution layers
(2 per MAC), forward and both backward products, as they are actually executed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .ops.geometry import Window

#: the PyTorch twin of the zoo (a source checkout's examples/; never imported by the package)
PYTORCH_TWIN = Path(__file__).resolve().parent.parent / "examples" / "pytorch_twin.py"

QUICK_MODELS = {"mlp": None, "dcgan": 32}  # model -> batch size (None: the recipe's)


# --- FLOPs of the GEMM-like ops ----------------------------------------------------------
def op_flops(name, args) -> int:
    """Multiply-add FLOPs (2 per MAC) of one call of op ``name`` with ``args``; 0 for others."""
    if name in ("dense_forward", "dense_backward_data", "dense_backward_weights"):
        a, b = args[0], args[1]
        if name == "dense_forward":  # x (N, in), kernel (in, out)
            return 2 * a.shape[0] * b.shape[0] * b.shape[1]
        if name == "dense_backward_data":  # dy (N, out), kernel (in, out)
            return 2 * a.shape[0] * b.shape[0] * b.shape[1]
        return 2 * a.shape[0] * a.shape[1] * b.shape[1]  # dy (N, out), x (N, in)
    if name == "conv2d_forward":  # x, kernel, bias, window
        x, k, _, g = args
        return 2 * x.shape[0] * g.ho * g.wo * int(np.prod(k.shape))
    if name == "conv2d_backward_data":  # dy (N, Ho, Wo, F), kernel (kh, kw, C, F)
        dy, k = args[0], args[1]
        return 2 * dy.shape[0] * dy.shape[1] * dy.shape[2] * int(np.prod(k.shape))
    if name == "conv2d_backward_weights":  # dy (N, Ho, Wo, F), x (N, H, W, C), window
        dy, x, g = args
        return 2 * dy.shape[0] * dy.shape[1] * dy.shape[2] * g.kh * g.kw * x.shape[3] * dy.shape[3]
    return 0


def _signature(args) -> str:
    parts = []
    for a in args:
        if isinstance(a, np.ndarray):
            parts.append("x".join(map(str, a.shape)))
        elif isinstance(a, tuple) and all(isinstance(v, int) for v in a):
            parts.append("(" + ",".join(map(str, a)) + ")")
        elif isinstance(a, (str, Window)):
            parts.append(str(a))
    return " ".join(parts)


# --- the worker: one model on one backend, in its own process ------------------------------
def worker(model: str, backend_name: str, batch: int | None) -> None:
    """Read commands on stdin ("step", "profile", "quit"), answer one JSON line each."""
    from . import zoo

    if backend_name not in ("torch", "torch-cuda"):
        from . import backend

        backend.set_backend(backend_name)  # first: the weights are built where the backend keeps arrays
    g, d, recipe = zoo.build(model, seed=0)
    if batch:
        recipe.override(batch_size=batch)
    if backend_name == "torch":
        trainer = load_pytorch_twin().TorchGAN(g, d, recipe, threads=os.cpu_count())
    elif backend_name == "torch-cuda":
        trainer = load_pytorch_twin().TorchGAN(g, d, recipe, device="cuda")
    else:
        from .train import GANTrainer

        lo, hi = recipe.data_range
        data = np.random.default_rng(0).uniform(lo, hi, (max(4 * recipe.batch_size, 64), *recipe.image_shape))
        trainer = GANTrainer(g, d, recipe, data.astype(np.float32), seed=0)
    trainer.step()  # the first step: compilation, cache loading, first-touch allocation
    _answer({"ready": True, "batch": recipe.batch_size})
    for line in sys.stdin:
        command = line.strip()
        if command.startswith("step"):
            count = int(command.split()[1]) if " " in command else 1
            start = time.perf_counter()
            for _ in range(count):
                trainer.step()
            _synchronize(trainer)
            _answer({"seconds": (time.perf_counter() - start) / count})
        elif command == "profile":
            _answer({"ops": _profile_step(trainer)})
        elif command == "quit":
            import resource

            _answer({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            return


def _synchronize(trainer) -> None:
    """Wait for queued GPU work, so a timing covers it (the twin knows how for PyTorch)."""
    if hasattr(trainer, "synchronize"):
        trainer.synchronize()
    else:
        from .xp import synchronize

        synchronize()


def _profile_step(trainer):
    from .ops import registry

    calls = []
    registry.set_observer(lambda name, args, dt: calls.append((name, _signature(args), dt, op_flops(name, args))))
    try:
        trainer.step()
    finally:
        registry.set_observer(None)
    return calls


def _answer(obj):
    print(json.dumps(obj), flush=True)


class Worker:
    def __init__(self, model, backend_name, batch):
        self.backend = backend_name
        self.started = time.perf_counter()
        cmd = [sys.executable, "-m", "scratchgan.bench", "--worker", model, backend_name, str(batch or 0)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self._read()
        self.first_step_s = time.perf_counter() - self.started

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"bench worker for backend {self.backend!r} exited with code {self.proc.returncode}")
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        out = self.ask("quit")
        self.proc.wait()
        return out["peak_rss_mb"]


# --- the parent --------------------------------------------------------------------------
def sgemm_peak(size=2048, repeats=5) -> float:
    """Best float32 GEMM rate of NumPy's BLAS here, in GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def gpu_sgemm_peak(size=8192, repeats=5) -> float:
    """The best float32 GEMM rate CuPy (cuBLAS) reaches on the current GPU, GFLOP/s."""
    import cupy

    a = cupy.random.random((size, size), dtype=cupy.float32)
    b = cupy.random.random((size, size), dtype=cupy.float32)
    best = float("inf")
    for _ in range(repeats + 1):  # the first product loads cuBLAS
        cupy.cuda.get_current_stream().synchronize()
        start = time.perf_counter()
        a @ b
        cupy.cuda.get_current_stream().synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


GPU_BACKENDS = ("cupy", "torch-cuda")


def torch_sees_gpu() -> bool:
    """PyTorch is installed and can run on a CUDA GPU (asked of the twin module)."""
    return torch_available() and load_pytorch_twin().cuda_available()


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def torch_available() -> bool:
    """PyTorch is installed and the twin models (examples/pytorch_twin.py) are here."""
    return importlib.util.find_spec("torch") is not None and PYTORCH_TWIN.is_file()


def load_pytorch_twin():
    """The module examples/pytorch_twin.py, loaded from its file."""
    spec = importlib.util.spec_from_file_location("scratchgan_pytorch_twin", PYTORCH_TWIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_model(model, batch, backends, iterations, profile=True, block=1):
    """Median seconds per iteration; each worker's turn runs ``block`` iterations back to
    back (small models: a lone iteration would time thread wake-ups, not training)."""
    workers = [Worker(model, b, batch) for b in backends]
    batch_size = workers[0].ready["batch"]
    times = {w.backend: [] for w in workers}
    for _ in range(iterations):  # interleaved: each backend in turn
        for w in workers:
            time.sleep(0.05)  # let the previous worker's BLAS/OpenMP threads go idle
            times[w.backend].append(w.ask(f"step {block}")["seconds"])
    ops = {w.backend: w.ask("profile")["ops"] for w in workers if profile and not w.backend.startswith("torch")}
    result = {"model": model, "batch": batch_size, "backends": {}}
    flops = sum(c[3] for c in next(iter(ops.values()), []))
    for w in workers:
        median = statistics.median(times[w.backend])
        result["backends"][w.backend] = {
            "ms_per_iter": 1000 * median, "images_per_s": batch_size / median,
            "gflops": flops / median / 1e9 if flops else None,
            "first_step_s": w.first_step_s, "peak_rss_mb": w.close(), "times_s": times[w.backend],
        }
    result["gflop_per_iter"] = flops / 1e9
    result["ops"] = _op_table(ops)
    return result


def _op_table(ops_by_backend):
    """[{op, shapes, flops, calls, backends: {name: median seconds per call}}], slowest first."""
    rows = {}
    for backend_name, calls in ops_by_backend.items():
        for name, sig, dt, flops in calls:
            row = rows.setdefault((name, sig), {"op": name, "shapes": sig, "flops": flops, "times": {}})
            row["times"].setdefault(backend_name, []).append(dt)
    table = []
    for row in rows.values():
        times = row.pop("times")
        row["calls"] = max(len(t) for t in times.values())
        row["backends"] = {b: statistics.median(t) for b, t in times.items()}
        table.append(row)
    table.sort(key=lambda r: -max(r["backends"].values()) * r["calls"])
    return table


def run(quick=False, models=None, backends=None, iterations=None, top=10, as_json=False, out=print,
        batch_sizes=None):
    from . import zoo
    from .backend import BackendError, set_backend

    if backends is None:
        backends = ["numpy"]
        try:
            set_backend("numba")
            backends.append("numba")
        except BackendError:
            pass
        try:
            set_backend("cupy")
            backends.append("cupy")
        except BackendError:
            pass
        finally:
            set_backend("numpy")
    have_torch = torch_available()
    if have_torch and "torch" not in backends:
        backends = [*backends, "torch"]
    if "cupy" in backends and "torch-cuda" not in backends and torch_sees_gpu():
        backends = [*backends, "torch-cuda"]
    plan = dict(QUICK_MODELS) if quick else {m: None for m in zoo.MODELS}
    if models:
        unknown = [m for m in models if m not in zoo.MODELS]
        if unknown:
            raise KeyError(f"unknown model {unknown[0]!r}: available models are {', '.join(zoo.MODELS)}")
        plan = {m: plan.get(m) for m in models}
    peak = sgemm_peak(1024 if quick else 2048)
    gpu_peak = gpu_sgemm_peak() if any(b in GPU_BACKENDS for b in backends) else None
    report = {"sgemm_peak_gflops": peak, "gpu_sgemm_peak_gflops": gpu_peak, "cpu_count": os.cpu_count(),
              "torch": have_torch, "backends": backends, "models": []}
    peaks = {b: gpu_peak if b in GPU_BACKENDS else peak for b in backends}
    if not as_json:
        out(f"SGEMM peak (NumPy BLAS, float32): {peak:.1f} GFLOP/s on {os.cpu_count()} cores; "
            f"PyTorch: {'installed, interleaved with ours' if have_torch else 'not available (not installed)'}")
        if gpu_peak:
            out(f"GPU SGEMM peak (CuPy/cuBLAS, float32, 8192^3): {gpu_peak:.0f} GFLOP/s")
    for model, batch in plan.items():
        for size in batch_sizes or [batch]:
            n = iterations or (3 if quick else (10 if model == "mlp" else 3))
            result = bench_model(model, size, backends, n, block=20 if model == "mlp" else 1)
            report["models"].append(result)
            if not as_json:
                _print_model(result, peaks, backends, top, have_torch, out)
    if as_json:
        out(json.dumps(report, indent=1))
    return report


def _print_model(result, peaks, backends, top, have_torch, out):
    out(f"\n== {result['model']} (batch {result['batch']}, {result['gflop_per_iter']:.2f} GFLOP/iter) ==")
    out(f"{'backend':<10}{'ms/iter':>8}{'img/s':>9}{'GFLOP/s':>9}{'%peak':>7}{'first step s':>14}{'peak MB':>9}"
        f"{'vs numpy':>9}{'vs torch':>9}")
    ref = result["backends"]["numpy"]["ms_per_iter"] if "numpy" in result["backends"] else None
    for name, r in result["backends"].items():
        twin = "torch-cuda" if name in GPU_BACKENDS else "torch"  # like against like: GPU with GPU
        torch_ms = result["backends"].get(twin, {}).get("ms_per_iter")
        gf = r["gflops"] or 0
        vs_np = f"{ref / r['ms_per_iter']:.2f}x" if ref else "-"
        vs_t = f"{torch_ms / r['ms_per_iter']:.2f}x" if torch_ms else "n/a"
        out(f"{name:<10}{r['ms_per_iter']:>8.1f}{r['images_per_s']:>9.0f}{gf:>9.1f}{100 * gf / peaks[name]:>6.0f}%"
            f"{r['first_step_s']:>14.2f}{r['peak_rss_mb']:>9.0f}{vs_np:>9}{vs_t:>9}")
    if not have_torch:
        out("torch: not available (needs PyTorch installed and a source checkout with examples/pytorch_twin.py)")
    ours = [b for b in backends if not b.startswith("torch")]
    peak = peaks[ours[-1]]
    out(f"  slowest ops (median ms per call; GFLOP/s and % of peak on {ours[-1]}):")
    out(f"  {'op':<26}{'shapes':<44}{'calls':>5}" + "".join(f"{b:>9}" for b in ours) + f"{'GFLOP/s':>9}{'%peak':>6}")
    for row in result["ops"][:top]:
        t = row["backends"].get(ours[-1])
        rate = row["flops"] / t / 1e9 if row["flops"] and t else None
        cells = "".join(f"{1000 * row['backends'][b]:>9.2f}" if b in row["backends"] else f"{'-':>9}" for b in ours)
        rate_s = f"{rate:>9.1f}{100 * rate / peak:>5.0f}%" if rate else f"{'':>15}"
        out(f"  {row['op']:<26}{row['shapes'][:43]:<44}{row['calls']:>5}{cells}{rate_s}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]) or None)
    else:
        sys.exit("usage: scratchgan bench (this module's --worker mode is for the bench itself)")
