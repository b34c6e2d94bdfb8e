"""scratchgan bench: FLOP counting, the PyTorch translation, and a --quick smoke run."""
import json
import re

import numpy as np

from scratchgan.ops.geometry import window
import pytest

from scratchgan import zoo
from scratchgan.bench import call_signature, op_flops
from scratchgan.ops import registry


def test_the_package_never_imports_a_deep_learning_framework():
    import pathlib
    import re

    package = pathlib.Path(__import__("scratchgan").__file__).parent
    sources = [*package.rglob("*.py"), *(package.parent / "kernels").rglob("*.py")]
    hits = [f"{p}:{i}" for p in sources for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.match(r"\s*(import|from)\s+(torch|tensorflow|keras|jax)\b", line)]
    assert sources and hits == []


def test_flops_of_gemm_like_ops():
    x, k = np.zeros((2, 5, 6, 3)), np.zeros((3, 2, 3, 4))
    # same padding, strides (2, 1): output 3 x 6 pixels, each 3*2*3 MACs per filter
    g = window((5, 6), (3, 2), (2, 1), "same")
    assert op_flops("conv2d_forward", (x, k, None, g)) == 2 * 2 * 3 * 6 * 3 * 2 * 3 * 4
    dy = np.zeros((2, 3, 6, 4))
    assert op_flops("conv2d_backward_data", (dy, k, g)) == 2 * 2 * 18 * 72
    assert op_flops("conv2d_backward_weights", (dy, x, g)) == 2 * 2 * 18 * 72
    a, w = np.zeros((7, 10)), np.zeros((10, 3))
    assert op_flops("dense_forward", (a, w, None)) == 2 * 7 * 10 * 3
    assert op_flops("dense_backward_data", (np.zeros((7, 3)), w)) == 2 * 7 * 10 * 3
    assert op_flops("dense_backward_weights", (np.zeros((7, 3)), a)) == 2 * 7 * 10 * 3
    assert op_flops("leaky_relu_forward", (a, 0.2)) == 0
    assert call_signature((x, k, None, (2, 1), "same")) == "2x5x6x3 3x2x3x4 (2,1) same"


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_pytorch_translation_has_the_same_parameters_and_output(name):
    pytest.importorskip("torch")
    from scratchgan.bench import load_pytorch_twin

    g, d, recipe = zoo.build(name, seed=0)
    t = load_pytorch_twin().TorchGAN(g, d, recipe)

    def count(m):
        return sum(p.numel() for p in m.parameters()) + sum(b.numel() for b in m.buffers() if b.is_floating_point())

    assert (count(t.G), count(t.D)) == (g.count_params(), d.count_params())
    h, w, c = recipe.image_shape
    assert tuple(t.G(t._z(2)).shape) == (2, c, h, w)


def test_quick_bench_runs_and_reports_every_figure(capsys, tmp_path):
    from scratchgan.cli import main

    plot = tmp_path / "roofline.png"
    assert main(["bench", "--quick", "--models", "mlp", "--backends", "numpy", "numba",
                 "--iterations", "1", "--json", "--plot", str(plot)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sgemm_peak_gflops"] > 0 and report["copy_bandwidth_gbs"] > 0
    assert report["blas"]["library"] and report["cpu"]
    assert plot.stat().st_size > 10_000
    (mlp,) = report["models"]
    assert mlp["model"] == "mlp" and mlp["batch"] == 128
    for backend in ("numpy", "numba"):
        r = mlp["backends"][backend]
        assert r["ms_per_iter"] > 0 and r["peak_rss_mb"] > 0 and r["first_step_s"] > 0
    # G (100-128-784) and D (784-128-1) at batch 128: 2*N*in*out per GEMM. G runs forward
    # twice and its weight gradients once; D runs forward three times, weight gradients
    # twice; dx is computed only where a first layer needs it: D's second layer three
    # times, D's first once (the G step), G's second once, never a first layer in its step
    n = 128
    gemm = lambda i, o: 2 * n * i * o  # noqa: E731
    g_pass, d_pass = gemm(100, 128) + gemm(128, 784), gemm(784, 128) + gemm(128, 1)
    expected = 3 * g_pass + 5 * d_pass + 3 * gemm(128, 1) + gemm(784, 128) + gemm(128, 784)
    assert mlp["gflop_per_iter"] == pytest.approx(expected / 1e9, rel=1e-6)
    dense = [row for row in mlp["ops"] if row["op"] == "dense_forward"]
    assert dense and all(row["flops"] > 0 and set(row["backends"]) == {"numpy", "numba"} for row in dense)
    assert all(row["bytes"] > 0 for row in mlp["ops"])


def test_bench_names_an_unknown_model():
    from scratchgan.bench import run

    from scratchgan.errors import UsageError

    with pytest.raises(UsageError, match="unknown model 'gan'"):
        run(quick=True, models=["gan"], backends=["numpy"])


def test_bytes_an_op_moves():
    from scratchgan.bench import element_ops, op_bytes

    x = np.zeros((4, 5), dtype=np.float32)
    y, mask = np.zeros((4, 5), dtype=np.float32), np.zeros((4, 5), dtype=bool)
    assert op_bytes("leaky_relu_forward", (x, 0.2), (y, mask)) == 80 + 80 + 20
    p, grad, m, v = (np.zeros(10, dtype=np.float32) for _ in range(4))
    # Adam reads param, grad, m, v and writes param, m and v back in place
    assert op_bytes("adam_update", (p, grad, m, v, 1e-3, 0.9, 0.999, 1e-7, 1), None) == 7 * 40
    assert element_ops("leaky_relu_forward", (x, 0.2)) == 20
    assert element_ops("adam_update", (p, grad, m, v)) == 12 * 10


def test_machine_reads_the_blas_kernel_and_warns_when_it_is_narrower_than_the_cpu(monkeypatch):
    from scratchgan import machine

    info = machine.blas_info()
    assert info["library"]  # threadpoolctl is a dependency: NumPy's BLAS is always named
    narrow = {"kernel": "Haswell", "kernel_bits": 256, "pinned_by": {"OPENBLAS_CORETYPE": "Haswell"}}
    warning = machine.blas_warning(narrow, 512)
    assert "Haswell" in warning and "env -u OPENBLAS_CORETYPE" in warning and "50%" in warning
    assert machine.blas_warning(dict(narrow, pinned_by={}), 512).endswith("(a current NumPy wheel does).")
    assert machine.blas_warning(narrow, 256) is None
    assert machine.blas_warning({"kernel": None, "kernel_bits": None, "pinned_by": {}}, 512) is None


def test_machine_warns_when_pytorch_is_held_to_a_narrower_width_in_part_only():
    from scratchgan import machine

    held = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    warning = machine.torch_hold_warning(held)
    assert "ATEN_CPU_CAPABILITY=avx2" in warning and "but not by MKL_ENABLE_INSTRUCTIONS" in warning
    assert "ONEDNN_MAX_CPU_ISA" not in warning.split("but not by")[1].split(":")[0]
    assert machine.torch_hold_warning({**held, "MKL_ENABLE_INSTRUCTIONS": "AVX2"}) is None  # held whole
    assert machine.torch_hold_warning({}) is None  # not held at all: full width everywhere
    assert machine.torch_hold_warning({"ATEN_CPU_CAPABILITY": ""}) is None  # an empty variable holds nothing
    only_mkl = machine.torch_hold_warning({"MKL_ENABLE_INSTRUCTIONS": "AVX2"})
    assert "but not by ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA" in only_mkl


def test_roofs_are_measured():
    from scratchgan import machine

    assert machine.sgemm_peak(256, repeats=2) > 0.5  # GFLOP/s: any machine does more
    assert machine.copy_bandwidth(8, repeats=2) > 0.1  # GB/s


def test_roofline_picture(tmp_path):
    from PIL import Image

    from scratchgan.roofline import plot_roofline

    path = tmp_path / "roof.png"
    plot_roofline([("dcgan", "conv2d_forward", 50.0, 120.0), ("mlp", "leaky_relu_forward", 0.1, 1.5)],
                  200.0, 20.0, path, title="test")
    image = Image.open(path)
    assert image.size == (1000, 700)
    pixels = np.asarray(image.convert("RGB"))
    assert (np.abs(pixels.astype(int) - (214, 39, 40)).sum(axis=2) < 30).any()  # the second model's dots
    with pytest.raises(ValueError, match="no op"):
        plot_roofline([("m", "op", 0.0, 1.0)], 200.0, 20.0, tmp_path / "none.png")


def test_a_worker_reports_its_own_peak_memory_not_its_parents():
    import subprocess
    import sys

    big = np.ones(300 * (1 << 20) // 8)  # 300 MB in this (the parent) process
    code = "from scratchgan.bench import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert big.sum() > 0 and child < 250


def test_a_pytorch_worker_gets_the_users_omp_wait_policy_not_the_numba_backends(monkeypatch):
    """The Numba backend sets OMP_WAIT_POLICY=PASSIVE in its process; a PyTorch worker started
    from it would inherit that (PyTorch's mlp iteration ran 2.1x slower): it gets the user's."""
    import scratchgan.kernels.numba as numba_backend
    from scratchgan import bench

    assert bench.os.environ.get("OMP_WAIT_POLICY") is not None  # the backend, loaded by the suite, set it
    monkeypatch.setattr(numba_backend, "USER_WAIT_POLICY", None)
    env = bench.twin_environment()
    assert "OMP_WAIT_POLICY" not in env and env["PATH"] == bench.os.environ["PATH"]
    monkeypatch.setattr(numba_backend, "USER_WAIT_POLICY", "ACTIVE")
    assert bench.twin_environment()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_a_pytorch_workers_process_never_loads_the_numba_backend():
    """The twin's process builds the zoo on numpy: Numba's kernels (and their OMP_WAIT_POLICY)
    never load there. PyTorch itself is stood in for, so that this runs without it."""
    import subprocess
    import sys

    code = ("import sys, os, types\n"
            "from scratchgan import bench, zoo\n"
            "bench.load_pytorch_twin = lambda: types.SimpleNamespace()\n"
            "bench.prepare_twin_process()\n"
            "zoo.build('dcgan_bn', seed=0)\n"
            "print('scratchgan.kernels.numba' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_WAIT_POLICY", "SCRATCHGAN_BACKEND")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["False", "None"]
    control = code.replace("bench.prepare_twin_process()\n", "")  # without it, building the zoo loads numba
    out = subprocess.run([sys.executable, "-c", control], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["True", "PASSIVE"]


def test_bench_waits_the_settle_time_given_before_each_worker_turn_and_profile(monkeypatch):
    """--settle reaches the pause before every request to a worker, timed turns and the
    profiled step alike (0.5 s unless given); bad values are refused."""
    from scratchgan import bench
    from scratchgan.cli import build_parser

    events = []
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: events.append(("pause", seconds)))
    ask = bench.Worker.ask

    def logged(self, command):
        events.append((self.backend, command))
        return ask(self, command)

    monkeypatch.setattr(bench.Worker, "ask", logged)
    bench.run(quick=True, models=["mlp"], backends=["numpy", "numba"], iterations=2, as_json=True,
              out=lambda *_: None, settle=0.05)
    requests = [i for i, event in enumerate(events) if event[0] != "pause" and event[1] != "quit"]
    assert {events[i][1] for i in requests} == {"step 20", "profile"}
    assert [events[i][0] for i in requests if events[i][1] == "profile"] == ["numpy", "numba"]
    assert all(events[i - 1] == ("pause", 0.05) for i in requests), events  # each one right after a pause
    assert bench.SETTLE_SECONDS == 0.5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--settle", "-1"])


def test_a_rate_above_the_copy_bandwidth_is_labelled_in_cache():
    from scratchgan.bench import _print_model, rate_cell

    cell, above = rate_cell(38.6, 10.0, "GB/s")
    assert "386%" in cell and "(in cache)" in cell and above
    cell, above = rate_cell(5.0, 10.0, "GB/s")
    assert "50%" in cell and "in cache" not in cell and not above
    timing = {"ms_per_iter": 1.0, "images_per_s": 4000, "gflops": 10.0, "first_step_s": 1.0, "peak_rss_mb": 100}
    op = {"op": "tanh_forward", "shapes": "(4, 4)", "calls": 1, "flops": 0, "backends": {"numba": 1e-6}}
    result = {"model": "mlp", "batch": 4, "gflop_per_iter": 0.01, "backends": {"numba": timing},
              "ops": [{**op, "bytes": 38.6e3}]}
    lines = []
    _print_model(result, {"numba": (100.0, 10.0)}, ["numba"], 10, True, lines.append)
    assert any("386% (in cache)" in line for line in lines)
    assert any(line.strip().startswith("in cache: above 100% of the copy bandwidth") for line in lines)
    lines.clear()
    _print_model({**result, "ops": [{**op, "bytes": 5e3}]}, {"numba": (100.0, 10.0)}, ["numba"], 10, True, lines.append)
    assert not any("in cache" in line for line in lines)


def test_the_serial_threshold_is_read_from_the_environment_and_checked():
    from scratchgan.kernels.numba import threads

    assert threads.parallel_min_work(None) == threads.parallel_min_work("") == threads.DEFAULT_PARALLEL_MIN_WORK
    assert threads.parallel_min_work("65536") == 65536 and threads.parallel_min_work(" Never ") == threads.NEVER
    for bad in ("-1", "1e6", "lots", str(2**63)):
        with pytest.raises(ValueError, match="SCRATCHGAN_PARALLEL_MIN_WORK"):
            threads.parallel_min_work(bad)


def test_a_kernel_runs_serially_below_the_threshold_and_on_every_thread_above(monkeypatch):
    import numba

    from scratchgan.kernels.numba import threads

    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 1000)
    monkeypatch.setattr(threads, "_quiet", [False])  # BLAS's threads as NumPy runs them (gemm.py's switch not thrown)
    threads.threads_for(999)
    assert numba.get_num_threads() == 1
    threads.threads_for(1000)
    assert numba.get_num_threads() == threads._all
    threads.threads_for(10)


def _example(name):
    """examples/<name>.py loaded as a module (the examples are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_threshold_script_measures_and_names_a_threshold(capsys):
    from scratchgan.kernels.numba import threads

    script = _example("thread_threshold")
    faster, slower = {"k": (10.0, 5.0)}, {"k": (10.0, 9.5)}  # parallel 2x faster; within the margin
    assert script.threshold([(4096, slower), (16384, faster), (65536, faster)]) == 16384
    assert script.threshold([(4096, faster), (16384, slower)]) is None
    before = threads.PARALLEL_MIN_WORK
    assert script.main(["--max-size", "8192", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "adam_update" in out and re.search(r"^\s+4096\s+\d", out, re.M)
    assert re.search(r"^SCRATCHGAN_PARALLEL_MIN_WORK=(\d+|never)", out, re.M)
    assert threads.PARALLEL_MIN_WORK == before  # the measurement leaves the threshold as it was


def _train_against_pytorch():
    return _example("train_against_pytorch")


def test_the_whole_process_comparison_refuses_run_lengths_that_cancel_nothing(capsys):
    with pytest.raises(SystemExit):
        _train_against_pytorch().main(["--short", "5", "--long", "5"])
    assert "--long must be larger than --short" in capsys.readouterr().err


def test_the_pytorch_op_profile_refuses_empty_runs_and_prints_a_table(capsys):
    script = _example("pytorch_ops")
    for bad in (["--iterations", "0"], ["--rows", "0"]):
        with pytest.raises(SystemExit):
            script.main(bad)
    pytest.importorskip("torch")
    from scratchgan import backend

    active = backend.get_backend()
    try:
        script.main(["--model", "mlp", "--iterations", "1", "--rows", "5"])
    finally:
        backend.set_backend(active)  # the script builds its layers on numpy
    out = capsys.readouterr().out
    assert "mlp:" in out and "aten::" in out and "Self CPU" in out


def test_the_whole_process_comparison_reports_both_sides(capsys):
    pytest.importorskip("torch")
    _train_against_pytorch().main(["--short", "1", "--long", "3", "--rounds", "1", "--backend", "numpy"])
    out = capsys.readouterr().out
    assert re.search(r"ms per iteration: scratchgan numpy/auto -?\d+\.\d+, PyTorch -?\d+\.\d+", out), out


def test_bench_backend_names_may_carry_a_conv_algorithm():
    from scratchgan.bench import _check_backend_name
    from scratchgan.errors import UsageError

    for name in ("numpy", "numba", "numba/im2col", "numba/winograd", "cupy/auto", "torch", "torch-cuda"):
        _check_backend_name(name)
    for name in ("numba/fft", "torch/im2col", "tpu", "numba/"):
        with pytest.raises(UsageError, match="bench backend"):
            _check_backend_name(name)


def test_the_winograd_layer_script_times_each_algorithm_and_splits_a_call(capsys):
    pytest.importorskip("numba")
    script = _example("winograd_layers")
    script.main(["--models", "dcgan_bn", "--batch", "2", "--repeats", "1", "--parts"])
    out = capsys.readouterr().out
    rows = re.findall(r"^dcgan_bn\s+2x7x7->7x7 .* (forward|backward_data|backward_weights)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$",
                      out, re.M)
    assert [r[0] for r in rows] == ["forward", "backward_data", "backward_weights"], out
    assert re.search(r"F\(4x4\) forward [\d.]+ ms: input transform [\d.]+ ms \([\d.]+ GB/s\), GEMMs [\d.]+ ms, "
                     r"output transform [\d.]+ ms", out), out


def test_the_winograd_layer_script_takes_apart_the_layers_it_cannot_serve(capsys):
    pytest.importorskip("numba")
    script = _example("winograd_layers")
    script.main(["--models", "dcgan_bn", "--batch", "2", "--repeats", "1", "--strided"])
    out = capsys.readouterr().out
    assert re.search(r"^SGEMM peak [\d.]+ GFLOP/s$", out, re.M), out
    rows = re.findall(r"^dcgan_bn\s+(\w+): 2x14x14->7x7 k5x5 s2x2 .* 64->128\s+(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\d+%$",
                      out, re.M)
    # the generator's transposed 128 -> 64 layer and the discriminator's 64 -> 128 one: both
    # stride 2, so Winograd serves neither; the 1-channel layers are not im2col GEMMs
    assert [(name, p) for name, p, *_ in rows] == [(name, p) for name in ("conv2dtranspose_1", "conv2d_1")
                                                  for p in ("forward", "backward_data", "backward_weights")], out
    for *_, total, folding, gemms in rows:
        assert float(folding) + float(gemms) <= float(total) + 0.15  # parts of the call, rounded


def test_the_memory_bound_op_script_rates_every_op_both_ways_and_estimates_fusion(capsys):
    pytest.importorskip("numba")
    from scratchgan.kernels.numba import threads

    script = _example("memory_bound_ops")
    before = threads.PARALLEL_MIN_WORK
    assert script.main(["--batch", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^copy bandwidth: [\d.]+ GB/s on one core, [\d.]+ GB/s on \d+ threads", out, re.M), out
    rate = r"\s+[\d.]+\s+[\d.]+\s+\d+%"
    rows = re.findall(rf"^(\w+)\s+(\d+x[\dx]+){rate}{rate}\s+\S", out, re.M)
    assert [name for name, _ in rows] == [name for name, _, _ in script.CASES], out
    assert ("maxpool_forward", "2x28x28x64") in rows
    for (name, shape), (_, _, recipe_shape) in zip(rows, script.CASES):  # --batch sets batches, not parameters
        want = recipe_shape if name in script.PARAMETER_OPS else (2, *recipe_shape[1:])
        assert shape == "x".join(map(str, want)), (name, shape)
    assert len(re.findall(r"^fusing .* at 2x[\dx]+: [\d.]+ ms as two ops, [\d.]+ ms as one pass \(saves -?[\d.]+ ms per call\)$",
                          out, re.M)) == 4, out
    assert re.search(r"^transposed convolution 2x14x14x128 -> 28x28x128, its bias: [\d.]+ ms as a separate pass, "
                     r"[\d.]+ ms in col2im \(saves -?[\d.]+ ms per call\)$", out, re.M), out
    assert threads.PARALLEL_MIN_WORK == before  # the measurement leaves the threshold as it was
    assert script.main(["--batch", "2", "--repeats", "1", "--ops-only"]) == 0
    out = capsys.readouterr().out
    assert "maxpool_forward" in out and "fusing" not in out and "transposed convolution" not in out, out
    with pytest.raises(SystemExit):
        script.main(["--batch", "0"])


def test_the_chunk_size_script_times_every_pass_of_each_path_and_restores_the_defaults(capsys):
    pytest.importorskip("numba")
    import scratchgan
    from scratchgan.kernels.numba import conv

    script = _example("chunk_sizes")
    defaults = (conv.CHUNK_BYTES, conv.TAPS_CHUNK_BYTES, scratchgan.get_conv_algo())
    assert script.main(["--models", "dcgan", "--batch", "2", "--sizes", "0.5", "16", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^dcgan\s+(2x\d+x\d+->\d+x\d+, \d+ -> (\d+), k\dx\d s\d)\s+(im2col|few-filter)\s+(\w+)"
                      r"\s+([\d.]+)([ *])\s+([\d.]+)([ *])\s*$", out, re.M)
    # dcgan: two transposed 4x4 layers, the 7x7 to one channel, two 3x3 in D; three passes each
    assert len(rows) == 15, out
    for _, filters, path, name, _, mark_small, _, mark_16 in rows:
        assert path == ("few-filter" if int(filters) <= conv.FEW_FILTERS else "im2col")
        default = conv.TAPS_CHUNK_BYTES if path == "few-filter" else conv.CHUNK_BYTES
        assert mark_small == " " and mark_16 == ("*" if default == 16 << 20 else " ")  # * marks the default size
    assert {name for *_, name, _, _, _, _ in rows} == {"forward", "backward_data", "backward_weights"}
    assert (conv.CHUNK_BYTES, conv.TAPS_CHUNK_BYTES, scratchgan.get_conv_algo()) == defaults
    with pytest.raises(SystemExit):
        script.main(["--sizes", "0"])


def test_the_op_script_replays_every_call_of_an_iteration_on_both_implementations(capsys):
    pytest.importorskip("numba")
    import scratchgan

    script = _example("ops_against_numpy")
    before = scratchgan.backend.get_backend()
    scratchgan.set_backend("numba")
    kernels = {name: registry.implementations(name).get("numba") for name in registry.OPS}
    scratchgan.set_backend(before)
    assert script.main(["--model", "mlp", "--batch", "8", "--repeats", "2"]) == 0
    assert scratchgan.backend.get_backend() == before  # the script puts the backend back
    assert {name: registry.implementations(name).get("numba") for name in registry.OPS} == kernels  # and the kernels
    out = capsys.readouterr().out
    split = re.search(r"^one iteration: (\d+) us; its 63 op calls, each alone on numba: (\d+) us; with every op call "
                      r"answered by its recorded output: (\d+) us; what the ops lose to each other inside the step: "
                      r"(-?\d+) us$", out, re.M)
    assert split, out
    whole, alone, without_ops, lost = map(int, split.groups())
    # timings, so no order between them is asserted (a unit test must not fail on a slow host); the
    # parts must add up as printed
    assert min(whole, alone, without_ops) > 0 and abs(whole - alone - without_ops - lost) <= 2
    rows = re.findall(r"^(\w+)\s+([\dx ]+?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", out, re.M)
    calls = {}
    for name, args in script.record_one_iteration("mlp", 8):
        key = (name, call_signature(args))
        calls[key] = calls.get(key, 0) + 1
    assert {(name, shapes.strip()): int(count) for name, shapes, count, *_ in rows} == calls, out
    assert sum(calls.values()) == 63  # the mlp's iteration: 63 op calls
    for *_, numba_us, numpy_us, ratio in rows:  # printed to 0.1 us: the ratio, of the unrounded times, within that
        low, high = float(numpy_us) - 0.05, float(numpy_us) + 0.05
        assert low / (float(numba_us) + 0.05) - 0.01 <= float(ratio) <= high / max(float(numba_us) - 0.05, 1e-3) + 0.01
    assert re.search(r"^numba slower than numpy by more than 10% and 0.5 us: \d+ of " + str(len(calls)) + " calls$", out, re.M)
    scratchgan.set_backend(before)
    with pytest.raises(SystemExit):
        script.main(["--batch", "0"])


def test_the_one_pool_script_splits_gemms_exactly_and_times_both_variants(capsys):
    pytest.importorskip("numba")
    script = _example("gemm_on_numba_threads")
    with pytest.raises(SystemExit):
        script.main(["--parts", "0"])
    sgemm = script.find_sgemm()
    if sgemm is None:  # a NumPy whose BLAS exports no CBLAS sgemm the script knows: it says so
        assert script.main(["--rounds", "1"]) == 1 and "no CBLAS sgemm" in capsys.readouterr().out
        pytest.skip("this NumPy's BLAS exports no CBLAS sgemm the script knows")
    product = script.make_split_product(sgemm)
    rng = np.random.default_rng(0)
    for m, k, n in [(7, 13, 5), (5, 13, 7), (1, 3, 1), (33, 1, 17), (128, 100, 1)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        want = a.astype(np.float64) @ b.astype(np.float64)
        for left, right in [(a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)),
                            (np.asfortranarray(a), np.asfortranarray(b))]:  # F-order: transposed views to BLAS
            for parts in (1, 2, 3):
                np.testing.assert_allclose(product(left, right, parts), want, rtol=1e-5, atol=1e-5 * k)
    assert product(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)).tolist() == [[0.0] * 4] * 3
    with pytest.raises(ValueError, match="cannot multiply"):
        product(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="float32"):
        product(np.zeros((2, 3)), np.zeros((3, 2)))
    assert script.main(["--rounds", "1", "--iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^round 1: as-is \d+\.\d\d, one-pool \d+\.\d\d: one-pool is \d+\.\d\dx as fast$", out, re.M), out
