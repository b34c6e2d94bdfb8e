"""``scratchgan bench``: per-op and per-model timings, backend against backend (and PyTorch).

Every figure of one table comes from one run, so ratios are meaningful even on a shared
machine whose absolute speed drifts:

* **The machine** (scratchgan/machine.py): CPU model and vector width, NumPy's BLAS
  (library, version, the kernel it runs, threads; a warning with the fix when that
  kernel is narrower than the CPU's vectors), the **SGEMM peak** (the best float32
  matrix product that BLAS reaches here) and the **copy bandwidth** (all cores copying
  a large array). GEMM-bound figures are given as % of the peak, memory-bound ones as
  % of the bandwidth.
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
  median time; GFLOP/s and % of the SGEMM peak for the dense and convolution ops, GB/s
  (bytes read and written, each array once) and % of the copy bandwidth for the others.
  ``--plot roofline.png`` draws every op on a roofline (scratchgan/roofline.py).

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

from . import machine
from .errors import UsageError
from .ops.geometry import Window

#: the PyTorch twin of the zoo (a source checkout's examples/; never imported by the package)
PYTORCH_TWIN = Path(__file__).resolve().parent.parent / "examples" / "pytorch_twin.py"

QUICK_MODELS = {"mlp": None, "dcgan": 32}  # model -> batch size (None: the recipe's)

#: the pause before each worker's turn, so that the previous worker's idle threads have gone to
#: sleep: OpenBLAS's threads spin for about 2^28 cycles (~0.1 s) after a GEMM, OpenMP's up to
#: 200 ms (Intel's KMP_BLOCKTIME), and a spinning thread of another process takes a core from the
#: worker being timed (``scratchgan bench --models mlp --settle 0.05`` against the default:
#: the README gives the figures).
SETTLE_SECONDS = 0.5


# --- FLOPs of the GEMM-like ops ----------------------------------------------------------
def pass_of(name: str) -> str:
    """The convolution pass a Winograd op runs (``winograd_conv2d_forward`` and
    ``strided_winograd_conv2d_forward`` -> ``conv2d_forward``); any other op's own name. The
    bench's tables show a pass as one row, whichever algorithm ran it."""
    return name.removeprefix("strided_").removeprefix("winograd_")


def op_flops(name, args) -> int:
    """Multiply-add FLOPs (2 per MAC) of one call of op ``name`` with ``args``; 0 for others.
    A Winograd convolution counts the direct convolution's FLOPs (it does fewer): its rate
    is an *effective* rate, and may pass the SGEMM roof."""
    if name != pass_of(name):
        name, args = pass_of(name), args[:-1]  # the same pass without the tile argument
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


#: nominal operations per element of the first argument, for memory-bound ops: they place
#: these ops on the roofline's intensity axis (their speed is judged in GB/s, not by this)
ELEMENT_OPS = {
    "leaky_relu_forward": 1, "leaky_relu_backward": 1, "tanh_forward": 1, "tanh_backward": 2,
    "sigmoid_forward": 3, "sigmoid_backward": 2, "batchnorm_forward_train": 7, "batchnorm_backward_train": 9,
    "batchnorm_forward_infer": 2, "batchnorm_backward_infer": 1, "bias_backward": 1,
    "dropout_forward": 2, "dropout_backward": 1, "bce_forward": 4, "bce_backward": 3,
    "bce_logits_forward": 5, "bce_logits_backward": 2, "adam_update": 12, "sgd_update": 4,
    "rmsprop_update": 6, "maxpool_forward": 1, "maxpool_backward": 1,
    "upsample_nearest_forward": 1, "upsample_nearest_backward": 1,
}


def _arrays(value):
    """The arrays in an op's argument or result (tuples flattened; None and scalars dropped)."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _arrays(v)]
    return [value] if hasattr(value, "nbytes") and hasattr(value, "shape") else []


def op_bytes(name, args, out) -> int:
    """Bytes one call must move at least: each array it reads and each it writes, once.
    Optimizer updates (``*_update``) also write back every argument but the gradient."""
    read = _arrays(args)
    written = _arrays(out)
    if name.endswith("_update"):
        written += [a for i, a in enumerate(read) if i != 1]
    return int(sum(a.nbytes for a in read + written))


def element_ops(name, args) -> int:
    """Nominal operations of a memory-bound op (ELEMENT_OPS per element of its first array)."""
    arrays = _arrays(args)
    return ELEMENT_OPS.get(name, 1) * int(arrays[0].size) if arrays else 0


def call_signature(args) -> str:
    """An op call's arguments as the per-op tables show them: array shapes, integer tuples,
    padding names and windows, e.g. "2x5x6x3 3x2x3x4 (2,1) same"."""
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
    from . import backend, zoo

    twin = None
    if backend_name in ("torch", "torch-cuda"):
        twin = prepare_twin_process()
    else:
        from . import conv_algo

        backend_name, _, algo = backend_name.partition("/")  # "numba/im2col": numba, convolutions by im2col
        if algo:
            conv_algo.set_conv_algo(algo)
        backend.set_backend(backend_name)  # first: the weights are built where the backend keeps arrays
    g, d, recipe = zoo.build(model, seed=0)
    if batch:
        recipe.override(batch_size=batch)
    if backend_name == "torch":
        trainer = twin.TorchGAN(g, d, recipe, threads=os.cpu_count())
    elif backend_name == "torch-cuda":
        trainer = twin.TorchGAN(g, d, recipe, device="cuda")
    else:
        from .train import GANTrainer

        lo, hi = recipe.data_range
        data = np.random.default_rng(0).uniform(lo, hi, (max(4 * recipe.batch_size, 64), *recipe.image_shape))
        trainer = GANTrainer(g, d, recipe, data.astype(np.float32), seed=0)
    trainer.step()  # the first step: compilation, cache loading, first-touch allocation
    # our trainer's losses stay where the model is (no GPU read per step; the clock waits for the GPU below)
    step = trainer.step if backend_name.startswith("torch") else trainer.advance
    _answer({"ready": True, "batch": recipe.batch_size})
    for line in sys.stdin:
        command = line.strip()
        if command.startswith("step"):
            count = int(command.split()[1]) if " " in command else 1
            start = time.perf_counter()
            for _ in range(count):
                step()
            _synchronize(trainer)
            seconds = (time.perf_counter() - start) / count
            if hasattr(trainer, "metrics"):  # the losses kept: read (and checked) outside the clock
                trainer.metrics.read()
            _answer({"seconds": seconds})
        elif command == "profile":
            _answer({"ops": _profile_step(trainer)})
        elif command == "quit":
            _answer({"peak_rss_mb": peak_rss_mb()})
            return


def twin_environment() -> dict:
    """The environment of a PyTorch worker: this process's, with ``OMP_WAIT_POLICY`` as the
    user started the bench (the Numba backend, once loaded here, sets it for its own threads;
    see prepare_twin_process)."""
    env = dict(os.environ)
    numba_backend = sys.modules.get("scratchgan.kernels.numba")
    if numba_backend is not None:
        if numba_backend.USER_WAIT_POLICY is None:
            env.pop("OMP_WAIT_POLICY", None)
        else:
            env["OMP_WAIT_POLICY"] = numba_backend.USER_WAIT_POLICY
    return env


def prepare_twin_process():
    """Set up a PyTorch worker's process as a user's own PyTorch script runs, and return the
    twin module (examples/pytorch_twin.py).

    PyTorch is imported first, so that its OpenMP runtime starts with the environment the
    bench was started with; and the zoo's layers are built on the numpy backend, so that the
    Numba backend never loads here. Loading it sets ``OMP_WAIT_POLICY=PASSIVE`` (for the
    Numba kernels' own threads, see scratchgan/kernels/numba/__init__.py); PyTorch started
    after that, with threads that sleep between its many small parallel regions, ran the
    mlp's iteration 2.1x slower (10.0 against 4.7 ms per iteration), and the bench's
    PyTorch column was slow by that much where ops are small."""
    from . import backend

    twin = load_pytorch_twin()
    backend.set_backend("numpy")  # the twin reads the layers' shapes and weights only
    return twin


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB. Linux's VmHWM belongs to the process's own
    memory map; getrusage's ru_maxrss (the fallback elsewhere) survives exec, so a worker
    forked from a large parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synchronize(trainer) -> None:
    """Wait for queued GPU work, so a timing covers it (the twin knows how for PyTorch)."""
    if hasattr(trainer, "synchronize"):
        trainer.synchronize()
    else:
        from .xp import synchronize

        synchronize()


def _profile_step(trainer):
    from .conv_algo import label
    from .ops import registry

    calls = []
    backend_name = registry.active()
    def observe(name, args, out, dt):
        flops = op_flops(name, args)
        calls.append((name, call_signature(args), dt, flops, op_bytes(name, args, out),
                      flops or element_ops(name, args), label(name, args, backend_name)))

    trainer.step()  # unobserved: after the bench's pause BLAS's threads sleep, and the first
    # GEMM of a step would carry their wake-up (the mlp's first dense_forward read 2 ms, not 0.03)
    registry.set_observer(observe)
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
        env = twin_environment() if backend_name.startswith("torch") else None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
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
GPU_BACKENDS = ("cupy", "torch-cuda")


def torch_sees_gpu() -> bool:
    """PyTorch is installed and can run on a CUDA GPU (asked of the twin module)."""
    return torch_available() and load_pytorch_twin().cuda_available()


def torch_available() -> bool:
    """PyTorch is installed and the twin models (examples/pytorch_twin.py) are here."""
    return importlib.util.find_spec("torch") is not None and PYTORCH_TWIN.is_file()


def load_pytorch_twin():
    """The module examples/pytorch_twin.py, loaded from its file."""
    spec = importlib.util.spec_from_file_location("scratchgan_pytorch_twin", PYTORCH_TWIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_model(model, batch, backends, iterations, profile=True, block=1, settle=SETTLE_SECONDS):
    """Median seconds per iteration; each worker's turn runs ``block`` iterations back to
    back (small models: a lone iteration would time thread wake-ups, not training)."""
    workers = [Worker(model, b, batch) for b in backends]
    batch_size = workers[0].ready["batch"]

    def settled(worker, command):
        """``command``'s answer, asked after the pause: the previous worker's BLAS threads
        still spin for a while, and the GEMMs of one asked at once waited for a core (the
        profiled mlp's first dense_forward read 0.7-3.9 ms instead of 0.05 ms)."""
        time.sleep(settle)
        return worker.ask(command)

    times = {w.backend: [] for w in workers}
    for _ in range(iterations):  # interleaved: each backend in turn
        for w in workers:
            times[w.backend].append(settled(w, f"step {block}")["seconds"])
    ops = {w.backend: settled(w, "profile")["ops"] for w in workers
           if profile and not w.backend.startswith("torch")}
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
        for name, sig, dt, flops, nbytes, ops, algo in calls:
            # "algo": what each backend ran for this row's pass
            row = rows.setdefault((pass_of(name), sig),
                                  {"op": pass_of(name), "shapes": sig, "flops": flops, "bytes": nbytes,
                                   "roofline_ops": ops, "times": {}, "algo": {}})
            row["times"].setdefault(backend_name, []).append(dt)
            if algo:
                row["algo"][backend_name] = algo
    table = []
    for row in rows.values():
        times = row.pop("times")
        row["calls"] = max(len(t) for t in times.values())
        row["backends"] = {b: statistics.median(t) for b, t in times.items()}
        table.append(row)
    table.sort(key=lambda r: -max(r["backends"].values()) * r["calls"])
    return table


def run(quick=False, models=None, backends=None, iterations=None, top=10, as_json=False, out=print,
        batch_sizes=None, plot=None, settle=SETTLE_SECONDS):
    from . import zoo

    for name in backends or ():
        _check_backend_name(name)
    backends = _with_torch(backends or _available_backends())
    plan = dict(QUICK_MODELS) if quick else {m: None for m in zoo.MODELS}
    if models:
        unknown = [m for m in models if m not in zoo.MODELS]
        if unknown:
            raise UsageError(f"unknown model {unknown[0]!r}: available models are {', '.join(zoo.MODELS)}")
        plan = {m: plan.get(m) for m in models}
    report = _machine_report(backends, quick)
    roofs = {b: (report["gpu_sgemm_peak_gflops"], report["gpu_copy_bandwidth_gbs"]) if _on_gpu(b)
             else (report["sgemm_peak_gflops"], report["copy_bandwidth_gbs"]) for b in backends}
    if not as_json:
        _print_machine(report, out)
    for model, batch in plan.items():
        for size in batch_sizes or [batch]:
            n = iterations or (3 if quick else (10 if model == "mlp" else 3))
            result = bench_model(model, size, backends, n, block=20 if model == "mlp" else 1, settle=settle)
            report["models"].append(result)
            if not as_json:
                _print_model(result, roofs, backends, top, report["torch"], out)
    if plot:
        draw_roofline(report, plot)
        if not as_json:
            out(f"\nroofline: {plot}")
    if as_json:
        out(json.dumps(report, indent=1))
    return report


def _check_backend_name(name: str) -> None:
    """A bench backend: numpy, numba, cupy, torch or torch-cuda; ours may carry a conv
    algorithm (``numba/im2col``), so that one run compares algorithms worker against worker."""
    from .backend import BACKENDS
    from .conv_algo import MODES

    base, slash, algo = name.partition("/")
    if base not in (*BACKENDS, "torch", "torch-cuda") or (slash and (base.startswith("torch") or algo not in MODES)):
        raise UsageError(f"bench backend {name!r}: expected numpy, numba, cupy, torch or torch-cuda, the first three "
                         f"optionally with a conv algorithm ({'/'.join(MODES)}), e.g. numba/im2col")


def _on_gpu(name: str) -> bool:
    return name.partition("/")[0] in GPU_BACKENDS


def _available_backends() -> list:
    """numpy, and numba and cupy where they load."""
    from .backend import BackendError, set_backend

    found = ["numpy"]
    for name in ("numba", "cupy"):
        try:
            set_backend(name)
            found.append(name)
        except BackendError:
            pass
    set_backend("numpy")
    return found


def _with_torch(backends) -> list:
    """``backends`` with PyTorch's CPU (and CUDA, beside cupy) workers added where PyTorch is installed."""
    if torch_available() and "torch" not in backends:
        backends = [*backends, "torch"]
    if "cupy" in backends and "torch-cuda" not in backends and torch_sees_gpu():
        backends = [*backends, "torch-cuda"]
    return list(backends)


def _machine_report(backends, quick: bool) -> dict:
    """The machine the figures come from: CPU, BLAS, the measured peak and bandwidth (and the GPU's)."""
    blas, cpu_bits = machine.blas_info(), machine.cpu_vector_bits()
    on_gpu = any(_on_gpu(b) for b in backends)
    return {"cpu": machine.cpu_model(), "cpu_vector_bits": cpu_bits, "cpu_count": os.cpu_count(), "blas": blas,
            "blas_warning": machine.blas_warning(blas, cpu_bits),
            "torch_holds": {name: os.environ[name] for name in machine.TORCH_HOLDS if name in os.environ},
            "torch_warning": machine.torch_hold_warning() if "torch" in backends else None,
            "sgemm_peak_gflops": machine.sgemm_peak(1024 if quick else 2048),
            "copy_bandwidth_gbs": machine.copy_bandwidth(64 if quick else 256),
            "gpu_sgemm_peak_gflops": machine.gpu_sgemm_peak() if on_gpu else None,
            "gpu_copy_bandwidth_gbs": machine.gpu_copy_bandwidth() if on_gpu else None,
            "torch": torch_available(), "backends": list(backends), "models": []}


def _print_machine(report, out) -> None:
    blas = report["blas"]
    out(f"CPU: {report['cpu']}, {report['cpu_count']} cores, {report['cpu_vector_bits'] or '?'}-bit vectors; "
        f"BLAS: {blas['library']} {blas['version'] or ''}, {blas['kernel'] or '?'} kernel, "
        f"{blas['threads'] or '?'} threads")
    if report["blas_warning"]:
        out(f"WARNING: {report['blas_warning']}")
    if report["torch_warning"]:
        out(f"WARNING: {report['torch_warning']}")
    out(f"SGEMM peak (NumPy BLAS, float32): {report['sgemm_peak_gflops']:.1f} GFLOP/s; copy bandwidth: "
        f"{report['copy_bandwidth_gbs']:.1f} GB/s; PyTorch: "
        f"{'installed, interleaved with ours' if report['torch'] else 'not available (not installed)'}")
    if report["gpu_sgemm_peak_gflops"]:
        out(f"GPU SGEMM peak (CuPy/cuBLAS, float32, 8192^3): {report['gpu_sgemm_peak_gflops']:.0f} GFLOP/s; "
            f"GPU copy bandwidth: {report['gpu_copy_bandwidth_gbs']:.0f} GB/s")


def draw_roofline(report, path) -> None:
    """Every op of every benched model, on the last of our backends, on one roofline."""
    from .roofline import plot_roofline

    ours = [b for b in report["backends"] if not b.startswith("torch")]
    backend_name = ours[-1]
    on_gpu = _on_gpu(backend_name)
    peak = report["gpu_sgemm_peak_gflops"] if on_gpu else report["sgemm_peak_gflops"]
    bandwidth = report["gpu_copy_bandwidth_gbs"] if on_gpu else report["copy_bandwidth_gbs"]
    points = []
    for result in report["models"]:
        for row in result["ops"]:
            t = row["backends"].get(backend_name)
            if t and row["bytes"] and row["roofline_ops"]:
                effective = row.get("algo", {}).get(backend_name, "").startswith("winograd")
                points.append((f"{result['model']} (batch {result['batch']})", row["op"],
                               row["roofline_ops"] / row["bytes"], row["roofline_ops"] / t / 1e9, effective))
    where = report["cpu"] if not on_gpu else "GPU"
    plot_roofline(points, peak, bandwidth, path,
                  title=f"scratchgan bench, {backend_name} backend, {where}: every op of one training iteration")


def _print_model(result, roofs, backends, top, have_torch, out):
    out(f"\n== {result['model']} (batch {result['batch']}, {result['gflop_per_iter']:.2f} GFLOP/iter) ==")
    out(f"{'backend':<10}{'ms/iter':>8}{'img/s':>9}{'GFLOP/s':>9}{'%peak':>7}{'first step s':>14}{'peak MB':>9}"
        f"{'vs numpy':>9}{'vs torch':>9}")
    ref = result["backends"]["numpy"]["ms_per_iter"] if "numpy" in result["backends"] else None
    for name, r in result["backends"].items():
        twin = "torch-cuda" if _on_gpu(name) else "torch"  # like against like: GPU with GPU
        torch_ms = result["backends"].get(twin, {}).get("ms_per_iter")
        gf = r["gflops"] or 0
        vs_np = f"{ref / r['ms_per_iter']:.2f}x" if ref else "-"
        vs_t = f"{torch_ms / r['ms_per_iter']:.2f}x" if torch_ms else "n/a"
        out(f"{name:<10}{r['ms_per_iter']:>8.1f}{r['images_per_s']:>9.0f}{gf:>9.1f}{100 * gf / roofs[name][0]:>6.0f}%"
            f"{r['first_step_s']:>14.2f}{r['peak_rss_mb']:>9.0f}{vs_np:>9}{vs_t:>9}")
    if not have_torch:
        out("torch: not available (needs PyTorch installed and a source checkout with examples/pytorch_twin.py)")
    ours = [b for b in backends if not b.startswith("torch")]
    peak, bandwidth = roofs[ours[-1]]
    out(f"  slowest ops (median ms per call; on {ours[-1]}: GFLOP/s and % of the SGEMM peak for GEMM-bound ops, "
        f"GB/s and % of the copy bandwidth for the others):")
    out(f"  {'op':<26}{'algorithm (' + ours[-1] + ')':<22}{'shapes':<44}{'calls':>5}" + "".join(f"{b:>9}" for b in ours)
        + f"{'rate':>14}{'%roof':>6}")
    over, effective = False, False
    for row in result["ops"][:top]:
        t = row["backends"].get(ours[-1])
        cells = "".join(f"{1000 * row['backends'][b]:>9.2f}" if b in row["backends"] else f"{'-':>9}" for b in ours)
        algo = row.get("algo", {}).get(ours[-1], "")
        rate_s = ""
        if t and (row["flops"] or row["bytes"]):
            unit = ("eGF/s" if algo.startswith("winograd") else "GF/s") if row["flops"] else "GB/s"
            rate_s, above = rate_cell(row["flops"] / t / 1e9 if row["flops"] else row["bytes"] / t / 1e9,
                                      peak if row["flops"] else bandwidth, unit)
            over |= above
            effective |= unit == "eGF/s"
        out(f"  {row['op']:<26}{algo:<22}{row['shapes'][:43]:<44}{row['calls']:>5}{cells}{rate_s}")
    if over:
        out(f"  {IN_CACHE}: above 100% of the copy bandwidth, the op's arrays fit in the CPU's caches, which are "
            f"faster than the main-memory bandwidth the roof is measured on")
    if effective:
        out(f"  eGF/s: effective rate, the direct convolution's FLOPs over the time; Winograd does fewer "
            f"multiplications, so it can pass 100% of the SGEMM peak ({EFFECTIVE}).")


#: the mark of a rate above its roof
IN_CACHE = "in cache"


#: the mark of an effective rate above the SGEMM peak
EFFECTIVE = "fewer multiplications"


def rate_cell(rate: float, roof: float, unit: str):
    """(the rate and its % of the roof as a table cell, whether it is above the roof). A
    memory-bound op above 100% is marked: its arrays sat in cache, so main memory's
    bandwidth is not its limit. An effective rate (eGF/s) above 100% is marked too: the
    algorithm does fewer multiplications than the FLOPs it is credited with."""
    share = 100 * rate / roof
    above = unit == "GB/s" and share > 100
    mark = f" ({IN_CACHE})" if above else (f" ({EFFECTIVE})" if unit == "eGF/s" and share > 100 else "")
    return f"{rate:>7.1f} {unit:<5}{share:>5.0f}%" + mark, above


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]) or None)
    else:
        sys.exit("usage: scratchgan bench (this module's --worker mode is for the bench itself)")
