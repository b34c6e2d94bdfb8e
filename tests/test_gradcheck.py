"""Every layer, the loss and whole G+D stacks against central differences (float64)."""
import re
from pathlib import Path

import numpy as np
import pytest

import scratchgan
from scratchgan import layers as L
from scratchgan.gradcheck_suite import CASES, LOSS_CASES, THRESHOLDS, build_target, run_case, run_loss_case
from scratchgan.layers.base import Layer


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layer_gradients(case):
    report = run_case(case)
    assert report.max_error < case.threshold, str(report)


@pytest.mark.parametrize("name,from_logits,targets", LOSS_CASES)
def test_loss_gradients(name, from_logits, targets):
    report = run_loss_case(name, from_logits, targets)
    assert report.max_error < THRESHOLDS["smooth"], str(report)


@pytest.mark.parametrize("name", ["Dense(5)", "BatchNorm image, training", "conv G (BN, transposed) -> D"])
def test_the_input_and_every_parameter_are_checked(name):
    case = next(c for c in CASES if c.name == name)
    target = build_target(case.make(), case.input_shape)
    layers = [l for part in (target if isinstance(target, list) else [target]) for l in getattr(part, "layers", [part])]
    n_params = sum(len(l.params) for l in layers)
    assert n_params >= 2
    assert [r.name for r in run_case(case).rows][0] == "x (input)"
    assert len(run_case(case).rows) == 1 + n_params


class _ScaledSquare(Layer):
    """A user's own layer, y = a * x^2, with a backward that may be wrong by a factor."""

    def __init__(self, error=1.0, **kw):
        super().__init__(**kw)
        self.error = error

    def _build(self, input_shape):
        self._add_param("a", np.array([1.5]))

    def _forward(self, x, training):
        return self.params["a"] * x * x, x

    def _backward(self, dy, x, need_param_grads):
        if need_param_grads:
            self._accumulate("a", np.array([np.sum(dy * x * x)]))
        return dy * 2 * self.params["a"] * x * self.error


def test_gradcheck_accepts_a_users_layer(rng):
    report = scratchgan.gradcheck(_ScaledSquare(), rng.standard_normal((3, 4)))
    assert report.max_error < 1e-7


@pytest.mark.parametrize("relative_mistake", [1e-3, 1e-5, 1e-6])
def test_gradcheck_catches_a_slightly_wrong_backward(rng, relative_mistake):
    report = scratchgan.gradcheck(_ScaledSquare(error=1 + relative_mistake), rng.standard_normal((3, 4)))
    # rel_error of a and a*(1+d) is d / (2 + d)
    assert report.max_error == pytest.approx(relative_mistake / 2, rel=0.05)
    assert report.rows[0].max_error > 1e-7


def test_gradcheck_catches_a_wrong_parameter_gradient(rng):
    class WrongBias(L.Dense):
        def _backward(self, dy, cache, need_param_grads):
            dx = super()._backward(dy, cache, need_param_grads)
            self.grads["bias"] = self.grads["bias"] * 1.01
            return dx

    report = scratchgan.gradcheck(WrongBias(3), rng.standard_normal((4, 5)))
    rows = {r.name: r.max_error for r in report.rows}
    assert rows["bias"] > 1e-3 and rows["kernel"] < 1e-7


def test_gradcheck_does_not_touch_the_target(rng):
    layer = L.Dense(3)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    layer.forward(x)
    before = layer.params["kernel"].copy()
    scratchgan.gradcheck(layer, x)
    assert layer.params["kernel"].dtype == np.float32
    np.testing.assert_array_equal(layer.params["kernel"], before)


def test_gradcheck_command_prints_the_table(capsys):
    from scratchgan.cli import main

    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "Conv2DTranspose k3 s2 same" in out and "raw error" in out and "judged" in out
    assert f"{len(CASES) + len(LOSS_CASES)} of {len(CASES) + len(LOSS_CASES)} checks passed" in out
    dense = next(line for line in out.splitlines() if line.startswith("Dense(3, tanh) "))
    raw = float(dense.split()[-5])
    assert 0 < raw < 1e-7  # the raw error is shown, never zeroed
    assert "< resol." in dense  # and the judged one says why it is not a number
    below = re.search(r"< resol. \((\d+) of (\d+) checks\)", out).groups()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"({below[0]} of the {below[1]} checks)" in readme  # the README's figure is this run's


def test_the_worst_tensor_is_the_one_with_the_largest_raw_error(rng):
    report = scratchgan.gradcheck(L.Dense(3, activation="tanh"), rng.standard_normal((4, 5)))
    assert report.worst.raw_error == max(r.raw_error for r in report.rows) == report.raw_error
    assert all(r.below_resolution == (r.max_error == 0) for r in report.rows)
    assert "raw error" in str(report) and "judged" in str(report)


def test_a_wrong_backward_is_not_below_resolution(rng):
    report = scratchgan.gradcheck(_ScaledSquare(error=1 + 1e-4), rng.standard_normal((3, 4)))
    assert not report.rows[0].below_resolution
    assert report.worst.name == "x (input)"


@pytest.mark.parametrize("where", [pytest.param("gpu", marks=pytest.mark.gpu), "emulated"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layer_gradients_on_the_gpu(case, where, request):
    """The same checks with the cupy backend: weights, inputs and perturbations on the GPU,
    float64; "emulated" runs them through launch.py and the CUDA kernels on the CPU."""
    if where == "emulated":
        request.getfixturevalue("fake_cupy")
    try:
        scratchgan.set_backend("cupy")
    except scratchgan.backend.BackendError as err:
        pytest.skip(f"the cupy backend cannot run here: {err}")
    try:
        report = run_case(case)
    finally:
        scratchgan.set_backend("numpy")
    assert report.max_error < case.threshold, str(report)


BLUR = '''
import numpy as np
from scratchgan.layers import Layer


class Blur(Layer):
    """y[:, j] = x[:, j-1] + x[:, j] + x[:, j+1], zeros outside; dx is the same sum of dy."""

    def __init__(self, broken=False, **kwargs):
        super().__init__(**kwargs)
        self.broken = broken

    def _forward(self, x, training):
        pad = np.pad(x, ((0, 0), (1, 1)))
        return pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:], None

    def _backward(self, dy, cache, need_param_grads):
        pad = np.pad(dy, ((0, 0), (1, 1)))
        if self.broken:  # an off-by-one at the right border: the padding takes the last column's value
            pad[:, -1] = pad[:, -2]
        return pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]
'''


@pytest.fixture
def blur_module(tmp_path):
    path = tmp_path / "blur_layers.py"
    path.write_text(BLUR)
    return path


def test_the_report_points_at_the_border_entry_a_broken_backward_gets_wrong(blur_module):
    from scratchgan.gradcheck_suite import load_layer_class

    blur = load_layer_class(f"{blur_module}:Blur")
    x = np.random.default_rng(0).standard_normal((3, 6))
    good, bad = scratchgan.gradcheck(blur(), x), scratchgan.gradcheck(blur(broken=True), x)
    assert good.max_error < 1e-7 and bad.max_error > 0.1
    worst = bad.rows[0].worst_entries
    assert {e.where[1] for e in worst[:3]} == {5}  # the three rows' last column, and nothing else, is off
    assert worst[3].rel_error < 1e-8
    first = worst[0]
    assert first.abs_error == pytest.approx(abs(first.analytic - first.numeric)) and first.abs_error > 0.01
    text = bad.explain(threshold=1e-7)
    assert f"({first.where[0]}, 5)" in text and "analytic" in text and "numeric" in text
    assert good.explain(threshold=1e-7) == "every tensor is within the threshold"
    assert "worst at" in str(bad) and f"({first.where[0]}, 5)" in str(bad)


def test_scratchgan_gradcheck_checks_a_layer_of_your_own(blur_module, capsys, monkeypatch):
    from scratchgan.cli import main

    assert main(["gradcheck", "--layer", f"{blur_module}:Blur", "--input-shape", "2,6"]) == 0
    assert "passed" in capsys.readouterr().out
    assert main(["gradcheck", "--layer", f"{blur_module}:Blur", "--input-shape", "2,6",
                 "--args", '{"broken": true}']) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and re.search(r"^\s+\(\d, 5\)\s", out, re.M)  # the table's rows name the border
    monkeypatch.chdir(blur_module.parent)  # as a module name, found from the current folder
    assert main(["gradcheck", "--layer", "blur_layers:Blur", "--input-shape", "2,6"]) == 0
    capsys.readouterr()
    for argv, message in [(["--layer", "blur_layers:Nothing", "--input-shape", "2,6"], "no Layer subclass named"),
                          (["--layer", "nowhere.py:Blur", "--input-shape", "2,6"], "no file nowhere.py"),
                          (["--layer", "blur_layers:Blur"], "--layer needs --input-shape")]:
        assert main(["gradcheck", *argv]) == 2
        assert message in capsys.readouterr().err


def test_the_gradcheck_table_explains_each_failing_check(blur_module, monkeypatch, capsys):
    from scratchgan import gradcheck_suite
    from scratchgan.gradcheck_suite import Case, load_layer_class

    blur = load_layer_class(f"{blur_module}:Blur")
    monkeypatch.setattr(gradcheck_suite, "CASES", [Case("broken blur", lambda: blur(broken=True), (2, 6))])
    monkeypatch.setattr(gradcheck_suite, "LOSS_CASES", [])
    assert gradcheck_suite.run_suite() == ["broken blur"]
    out = capsys.readouterr().out
    assert "broken blur:" in out and "worst comparisons" in out and re.search(r"\(\d, 5\)", out)
