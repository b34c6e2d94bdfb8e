"""scratchgan bench: FLOP counting, the PyTorch translation, and a --quick smoke run."""
import json

import numpy as np

from scratchgan.ops.geometry import window
import pytest

from scratchgan import zoo
from scratchgan.bench import _signature, op_flops


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
    assert _signature((x, k, None, (2, 1), "same")) == "2x5x6x3 3x2x3x4 (2,1) same"


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


def test_quick_bench_runs_and_reports_every_figure(capsys):
    from scratchgan.cli import main

    assert main(["bench", "--quick", "--models", "mlp", "--backends", "numpy", "numba",
                 "--iterations", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sgemm_peak_gflops"] > 0
    (mlp,) = report["models"]
    assert mlp["model"] == "mlp" and mlp["batch"] == 128
    for backend in ("numpy", "numba"):
        r = mlp["backends"][backend]
        assert r["ms_per_iter"] > 0 and r["peak_rss_mb"] > 0 and r["first_step_s"] > 0
    assert mlp["gflop_per_iter"] == pytest.approx(0.32, abs=0.01)  # 0.27 for the three passes, plus D's weight gradients
    dense = [row for row in mlp["ops"] if row["op"] == "dense_forward"]
    assert dense and all(row["flops"] > 0 and set(row["backends"]) == {"numpy", "numba"} for row in dense)


def test_bench_names_an_unknown_model():
    from scratchgan.bench import run

    with pytest.raises(KeyError, match="unknown model 'gan'"):
        run(quick=True, models=["gan"], backends=["numpy"])
