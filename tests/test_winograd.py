"""Winograd convolutions: exact matrices, the NumPy reference against direct convolution, the
Numba kernels against the reference on odd sizes, float32 error on the zoo's real layers,
gradient checks through the Winograd path, and the algorithm choice (modes, fallback notes,
the measured-choice cache and its reader)."""
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scratchgan
from scratchgan import conv_algo, layers as L, ops, zoo
from scratchgan.ops.geometry import window
from scratchgan.ops.winograd import TILES, tile, winograd_fractions
from scratchgan.xp import to_host

numba_winograd = pytest.importorskip("scratchgan.kernels.numba.winograd")

PASSES = ("forward", "backward_data", "backward_weights")


def _direct(pass_name, x, k, dy, g):
    if pass_name == "forward":
        return ops.conv2d_forward.reference(x, k, None, g)
    if pass_name == "backward_data":
        return ops.conv2d_backward_data.reference(dy, k, g)
    return ops.conv2d_backward_weights.reference(dy, x, g)


def _winograd(impl, pass_name, x, k, dy, g, t):
    fn = getattr(numba_winograd, f"winograd_conv2d_{pass_name}") if impl == "numba" else \
        getattr(ops, f"winograd_conv2d_{pass_name}").reference
    if pass_name == "forward":
        return fn(x, k, None, g, t)
    if pass_name == "backward_data":
        return fn(dy, k, g, t)
    return fn(dy, x, g, t)


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("r", [3, 5])
def test_the_matrices_compute_the_correlation_exactly(m, r, rng):
    """In rational arithmetic, y = AT ((G g) * (BT d)) is the correlation, for random integers."""
    at, g, bt = winograd_fractions(m, r)
    alpha = m + r - 1
    for _ in range(5):
        d = [Fraction(int(v)) for v in rng.integers(-9, 10, alpha)]
        w = [Fraction(int(v)) for v in rng.integers(-9, 10, r)]
        u = [sum(g[i][k] * w[k] for k in range(r)) for i in range(alpha)]
        v = [sum(bt[i][k] * d[k] for k in range(alpha)) for i in range(alpha)]
        y = [sum(at[o][i] * u[i] * v[i] for i in range(alpha)) for o in range(m)]
        assert y == [sum(d[o + k] * w[k] for k in range(r)) for o in range(m)]


#: odd shapes: (N, H, W, r, padding, C, F), including images smaller than a tile
SHAPES = [(2, 7, 9, 3, "same", 3, 5), (3, 8, 6, 5, "same", 4, 2), (1, 11, 10, 5, "valid", 3, 3),
          (2, 5, 5, 3, "valid", 2, 7), (2, 3, 4, 5, "same", 2, 3), (1, 1, 1, 3, "same", 1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("pass_name", PASSES)
def test_the_reference_and_the_numba_kernels_equal_direct_convolution(shape, m, pass_name, rng, monkeypatch):
    n, h, w, r, padding, c, f = shape
    monkeypatch.setattr(numba_winograd, "CHUNK_BYTES", 1)  # one image per chunk: the chunk loop runs
    g = window((h, w), r, 1, padding)
    x, k = rng.standard_normal((n, h, w, c)), rng.standard_normal((r, r, c, f))
    dy = rng.standard_normal((n, g.ho, g.wo, f))
    want = _direct(pass_name, x, k, dy, g)
    for impl in ("numpy", "numba"):
        got = _winograd(impl, pass_name, x, k, dy, g, tile(m, r))
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * max(1.0, np.abs(want).max()), err_msg=impl)


def test_the_numba_forward_adds_the_bias_in_float32(rng):
    g = window((6, 5), 3, 1, "same")
    x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    k, b = rng.standard_normal((3, 3, 4, 6)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    got = numba_winograd.winograd_conv2d_forward(x, k, b, g, tile(2, 3))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ops.conv2d_forward.reference(x, k, b, g), atol=2e-5)


@pytest.mark.parametrize("m", TILES)
def test_the_backward_data_pass_adds_a_transposed_convolutions_bias(m, rng):
    """Both Winograd backward-data implementations take the transposed layer's bias (the
    Numba one in its output transform) and equal direct backward-data plus the bias."""
    g = window((7, 6), 5, 1, "same")
    dy = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    k, b = rng.standard_normal((5, 5, 4, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    want = ops.conv2d_backward_data.reference(dy, k, g) + b
    for fn in (numba_winograd.winograd_conv2d_backward_data, ops.winograd_conv2d_backward_data.reference):
        got = fn(dy, k, g, tile(m, 5), bias=b)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=2e-4 * np.abs(want).max())


def test_the_launchers_refuse_arguments_that_do_not_fit(rng):
    from scratchgan.kernels.numba.checks import KernelArgumentError

    g = window((6, 6), 3, 1, "same")
    x, k = rng.standard_normal((1, 6, 6, 2)), rng.standard_normal((3, 3, 2, 4))
    with pytest.raises(KernelArgumentError, match="tile"):
        numba_winograd.winograd_conv2d_forward(x, k, None, g, tile(2, 5))  # a 5x5 tile for a 3x3 kernel
    with pytest.raises(KernelArgumentError, match="expects 6x6"):
        numba_winograd.winograd_conv2d_forward(x[:, :5], k, None, g, tile(2, 3))
    with pytest.raises(KernelArgumentError, match="channels"):
        numba_winograd.winograd_conv2d_forward(x, k[:, :, :1], None, g, tile(2, 3))
    with pytest.raises(KernelArgumentError, match="stride"):
        numba_winograd.winograd_conv2d_forward(x, k, None, window((6, 6), 3, 2, "same"), tile(2, 3))
    with pytest.raises(KernelArgumentError, match="dtypes"):
        numba_winograd.winograd_conv2d_forward(x.astype(np.float32), k, None, g, tile(2, 3))
    from scratchgan.ops.winograd import Tile, winograd_matrices

    at, gm, bt = winograd_matrices(7, 3)  # F(7, 3): alpha 9, more terms than the transforms sum
    at_w, g_w, _ = winograd_matrices(3, 7)
    with pytest.raises(KernelArgumentError, match="at most 8 terms"):
        numba_winograd.winograd_conv2d_forward(x, k, None, g, Tile(7, 3, at, gm, bt, at_w, g_w))


@pytest.mark.parametrize("impl", ["numpy", "numba"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_gives_non_finite_outputs_where_the_reference_does(impl, bad, rng):
    """Never a finite value where direct convolution has none; where both are finite, they agree.
    (A tile spreads a bad input over its whole tile, so Winograd may have more non-finite outputs.)"""
    g = window((9, 9), 5, 1, "same")
    k = rng.standard_normal((5, 5, 3, 4))
    for pass_name in PASSES:
        x, dy = rng.standard_normal((2, 9, 9, 3)), rng.standard_normal((2, 9, 9, 4))
        (dy if pass_name == "backward_data" else x)[1, 4, 6, 2] = bad
        want = _direct(pass_name, x, k, dy, g)
        got = _winograd(impl, pass_name, x, k, dy, g, tile(4, 5))
        bad_out = ~np.isfinite(want)
        assert bad_out.any(), pass_name
        assert not np.isfinite(got[bad_out]).any(), pass_name
        if pass_name != "backward_weights":  # image 0 holds no bad value: untouched
            assert np.isfinite(got[0]).all()
        both = np.isfinite(got) & np.isfinite(want)
        np.testing.assert_allclose(got[both], want[both], atol=1e-9)


def _zoo_layers():
    """(model, layer, input shape with the recipe's batch) of every zoo conv layer Winograd serves."""
    found = []
    for model in ("dcgan_bn", "dcgan_upsample", "dcgan", "cifar_frog"):
        g, d, recipe = zoo.build(model, seed=0)
        for net in (g, d):
            for layer in net.layers:
                if isinstance(layer, L.Conv2D | L.Conv2DTranspose) and conv_algo.winograd_refusal(layer.window) is None:
                    found.append((model, layer, (recipe.batch_size, *layer.input_shape[1:])))
    return found


ZOO_LAYERS = _zoo_layers()


def test_the_zoo_has_winograd_layers():
    assert {model for model, _, _ in ZOO_LAYERS} == {"dcgan_bn", "dcgan_upsample", "cifar_frog"}
    # dcgan_bn's four stride-2 5x5 layers run on 2x2 blocks; dcgan's 4x4 and 3x3 do not
    strided = [(model, layer.name) for model, layer, _ in ZOO_LAYERS if layer.window.sh == 2]
    assert strided == [("dcgan_bn", "conv2dtranspose_1"), ("dcgan_bn", "conv2dtranspose_2"),
                       ("dcgan_bn", "conv2d"), ("dcgan_bn", "conv2d_1")], strided
    assert len(ZOO_LAYERS) == 13


#: the float32 bound: max |winograd32 - direct64| over max |direct64|, per pass and layer
FLOAT32_BOUND = 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("case", ZOO_LAYERS, ids=lambda c: f"{c[0]}-{c[1].name}-{c[1].window}")
def test_float32_error_on_every_zoo_layer_is_within_the_bound(case, m, rng):
    """Each pass of each zoo layer Winograd serves, on its real shape (the recipe's batch), in
    float32 through the Numba kernels, against float64 direct convolution."""
    _, layer, shape = case
    gw, transposed = layer.window, isinstance(layer, L.Conv2DTranspose)
    k = layer.params["kernel"].astype(np.float64)
    # the Window's input side is the layer's output for a transposed convolution
    x_shape = (shape[0], gw.h, gw.w, k.shape[2])
    x = rng.standard_normal(x_shape)
    dy = rng.standard_normal((shape[0], gw.ho, gw.wo, k.shape[3]))
    for pass_name in PASSES:
        want = _direct(pass_name, x, k, dy, gw)
        f32 = (x.astype(np.float32), k.astype(np.float32), dy.astype(np.float32))
        if gw.sh == 1:
            got = _winograd("numba", pass_name, *f32, gw, tile(m, gw.kh))
        else:  # on 2x2 blocks: the composed op, its stride-1 passes on the Numba kernels
            scratchgan.set_backend("numba")
            got = _blocked(pass_name, *f32, gw, m)
        error = np.abs(got - want).max() / np.abs(want).max()
        print(f"{case[0]} {layer.name} {gw} transposed={transposed} F({m}) {pass_name}: {error:.2e}")
        assert error < FLOAT32_BOUND, (pass_name, error)


def _blocked(pass_name, x, k, dy, g, m, bias=None):
    """A stride-2 5x5 pass on 2x2 blocks, through the active backend."""
    t = conv_algo.winograd_tile(m, g)
    if pass_name == "forward":
        return ops.strided_winograd_conv2d_forward(x, k, None, g, t)
    if pass_name == "backward_data":
        return ops.strided_winograd_conv2d_backward_data(dy, k, g, t, bias=bias)
    return ops.strided_winograd_conv2d_backward_weights(dy, x, g, t)


#: (N, H, W, padding, C, F): even and odd sizes, both paddings, images smaller than a tile
STRIDED_SHAPES = [(2, 14, 14, "same", 3, 4), (1, 13, 9, "same", 2, 5), (2, 15, 16, "valid", 3, 2),
                  (1, 7, 6, "same", 4, 3), (1, 5, 5, "valid", 1, 1), (3, 6, 11, "valid", 2, 3)]


@pytest.mark.parametrize("shape", STRIDED_SHAPES, ids=str)
@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_stride_2_on_blocks_equals_direct_convolution(shape, m, backend, rng):
    n, h, w, padding, c, f = shape
    scratchgan.set_backend(backend)
    g = window((h, w), 5, 2, padding)
    x, k = rng.standard_normal((n, h, w, c)), rng.standard_normal((5, 5, c, f))
    dy, bias = rng.standard_normal((n, g.ho, g.wo, f)), rng.standard_normal(c)
    for pass_name in PASSES:
        want = _direct(pass_name, x, k, dy, g)
        got = _blocked(pass_name, x, k, dy, g, m)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * max(1.0, np.abs(want).max()), err_msg=pass_name)
    with_bias = _blocked("backward_data", x, k, dy, g, m, bias=bias)  # a transposed layer's forward
    np.testing.assert_allclose(with_bias, ops.conv2d_backward_data.reference(dy, k, g, bias=bias), atol=1e-11)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 17), w=st.integers(1, 17), padding=st.sampled_from(["same", "valid"]),
       c=st.integers(1, 5), f=st.integers(1, 5), m=st.sampled_from(TILES), seed=st.integers(0, 2**32 - 1))
def test_fuzz_stride_2_on_blocks_against_direct_convolution(h, w, padding, c, f, m, seed):
    from scratchgan.ops import strided_winograd as sw

    g = window((h, w), 5, 2, padding) if padding == "same" or min(h, w) >= 5 else None
    if g is None or g.ho < 1 or g.wo < 1:
        return  # "valid" needs the kernel to fit
    scratchgan.set_backend("numba")
    r = np.random.default_rng(seed)
    x, k, dy = r.standard_normal((2, h, w, c)), r.standard_normal((5, 5, c, f)), r.standard_normal((2, g.ho, g.wo, f))
    blocks = sw.to_blocks(x)
    assert blocks.shape == (2, -(-h // 2), -(-w // 2), 4 * c)
    np.testing.assert_array_equal(sw.from_blocks(blocks, h, w), x)  # the blocking loses nothing
    np.testing.assert_array_equal(sw.kernel_from_blocks(sw.blocked_kernel(k, g), g), k)
    assert np.count_nonzero(sw.blocked_kernel(np.ones((5, 5, 1, 1)), g)) == 25  # each tap once, 11 zeros
    for pass_name in PASSES:
        want = _direct(pass_name, x, k, dy, g)
        np.testing.assert_allclose(_blocked(pass_name, x, k, dy, g, m), want, rtol=0,
                                   atol=1e-11 * max(1.0, np.abs(want).max()), err_msg=pass_name)


def test_a_blocked_pass_is_observed_as_one_op_call(rng):
    """The bench's per-op table must not count the stride-1 pass inside it a second time."""
    scratchgan.set_backend("numba")
    g = window((8, 8), 5, 2, "same")
    x, k = rng.standard_normal((1, 8, 8, 2)), rng.standard_normal((5, 5, 2, 3))
    seen = []
    ops.registry.set_observer(lambda name, args, out, seconds: seen.append(name))
    try:
        ops.strided_winograd_conv2d_forward(x, k, None, g, tile(4, 3))
        ops.conv2d_forward(x, k, None, g)  # and the observer is back for the next op
    finally:
        ops.registry.set_observer(None)
    assert seen == ["strided_winograd_conv2d_forward", "conv2d_forward"]


def test_blocked_winograd_refuses_windows_it_cannot_serve(rng):
    from scratchgan.errors import UsageError

    t = tile(4, 3)
    x, k = rng.standard_normal((1, 8, 8, 2)), rng.standard_normal((4, 4, 2, 3))
    with pytest.raises(UsageError, match="stride 2x2, kernel 4x4"):
        ops.strided_winograd_conv2d_forward(x, k, None, window((8, 8), 4, 2, "same"), t)
    with pytest.raises(UsageError, match="Tile of a 3x3 kernel"):  # the blocked kernel is 3x3, not 5x5
        ops.strided_winograd_conv2d_forward(x, rng.standard_normal((5, 5, 2, 3)), None, window((8, 8), 5, 2, "same"),
                                            tile(4, 5))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("layer", [
    lambda: L.Conv2D(3, 3, padding="same"), lambda: L.Conv2D(2, 5, padding="valid"),
    lambda: L.Conv2DTranspose(2, 5, strides=1, padding="same"), lambda: L.Conv2DTranspose(3, 3, padding="valid"),
    lambda: L.Conv2D(2, 5, strides=2, padding="same"), lambda: L.Conv2DTranspose(2, 5, strides=2, padding="same"),
], ids=["conv3-same", "conv5-valid", "transpose5-same", "transpose3-valid", "conv5-stride2", "transpose5-stride2"])
def test_gradients_check_through_the_winograd_path(backend, layer, rng):
    scratchgan.set_backend(backend)
    scratchgan.set_conv_algo("winograd")
    ran = set()
    model = layer()
    ops.registry.set_observer(lambda name, args, out, seconds: ran.add(name))
    try:
        report = scratchgan.gradcheck(model, rng.standard_normal((2, 7, 6, 3)))
    finally:
        ops.registry.set_observer(None)
    assert report.max_error < 1e-7, report.explain(1e-7)
    prefix = "strided_winograd" if model.strides == (2, 2) else "winograd"  # 2x2 blocks: one op per pass
    assert {f"{prefix}_conv2d_{p}" for p in PASSES} <= ran  # all three passes ran Winograd...
    assert not {"conv2d_forward", "conv2d_backward_data", "conv2d_backward_weights"} & ran  # ...and only it


def test_forced_winograd_runs_im2col_where_it_cannot_and_says_so_once_per_layer(rng, capsys):
    scratchgan.set_conv_algo("winograd")
    strided, seven = L.Conv2D(4, 3, strides=2, padding="same"), L.Conv2D(4, 7, padding="same")
    x = rng.standard_normal((2, 8, 8, 3))
    for model in (strided, seven):
        for _ in range(2):
            y = model.forward(x, training=True)
            model.backward(np.ones_like(y))
        want = ops.conv2d_forward.reference(x, model.params["kernel"], model.params["bias"], model.window)
        np.testing.assert_array_equal(y, want)
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 2, notes
    assert "stride 2x2" in notes[0] and "it runs im2col" in notes[0] and "8x8->4x4" in notes[0]
    assert "kernel 7x7" in notes[1]


def test_the_mode_is_checked_and_read_from_the_environment(monkeypatch):
    with pytest.raises(scratchgan.errors.UsageError, match="auto, im2col, winograd"):
        scratchgan.set_conv_algo("fastest")
    monkeypatch.setattr(conv_algo, "_mode", [None])
    monkeypatch.setenv("SCRATCHGAN_CONV_ALGO", "winograd")
    assert scratchgan.get_conv_algo() == "winograd"
    monkeypatch.setattr(conv_algo, "_mode", [None])
    monkeypatch.setenv("SCRATCHGAN_CONV_ALGO", "fast")
    with pytest.raises(scratchgan.errors.UsageError, match="SCRATCHGAN_CONV_ALGO='fast'"):
        scratchgan.get_conv_algo()


def test_auto_on_the_reference_backend_is_im2col_and_bit_for_bit(rng):
    model = L.Conv2D(4, 3, padding="same")
    x = rng.standard_normal((2, 6, 6, 3))
    y = model.forward(x)
    assert y.tobytes() == ops.conv2d_forward.reference(x, model.params["kernel"], model.params["bias"],
                                                         model.window).tobytes()
    assert set(model.algorithms.chosen.values()) == {None}


def _timed_trials(monkeypatch):
    calls = []
    original = conv_algo.Choice.run

    def counting(self, *args):
        calls.append(self.tile)
        return original(self, *args)

    monkeypatch.setattr(conv_algo.Choice, "run", counting)
    return calls


def test_the_preferred_algorithm_is_the_most_exact_one_within_the_margin_of_the_fastest():
    pick = lambda timings: conv_algo.preferred(timings).tile  # noqa: E731
    m = conv_algo.MARGIN
    assert pick({None: 1.0, 2: 0.9, 4: 0.5}) == 4  # a clear win
    assert pick({None: 1.0, 2: 1 / (1 + m / 2), 4: 1 / (1 + m / 2)}) is None  # Winograd wins by less than the margin
    assert pick({None: 1.2, 2: 1.0, 4: 1 / (1 + m / 2)}) == 2  # F(2x2) within the margin of F(4x4)
    assert pick({None: 1.0 + m, 4: 1.0}) is None  # exactly at the margin: the exact one
    assert pick({None: 1.0 + 2 * m, 4: 1.0}) == 4
    assert pick({None: 3.0}) is None
    with pytest.raises(ValueError, match="no known algorithm"):
        conv_algo.preferred({3: 1.0})


@pytest.mark.parametrize("seconds, chosen", [({None: 1.0, 2: 0.97, 4: 0.96}, None), ({None: 1.0, 2: 0.97, 4: 0.9}, 4),
                                             ({None: 1.0, 2: 0.9, 4: 0.88}, 2)])
def test_auto_keeps_the_more_exact_algorithm_unless_another_wins_by_the_margin(seconds, chosen, tmp_path, monkeypatch,
                                                                               rng):
    monkeypatch.setenv("SCRATCHGAN_CONV_CACHE", str(tmp_path / "choices.json"))
    scratchgan.set_backend("numba")
    clock = [0.0]
    original = conv_algo.Choice.run

    def run_for(self, *args):  # each algorithm "takes" its given time on a fake clock
        clock[0] += seconds[self.tile]
        return original(self, *args)

    monkeypatch.setattr(conv_algo.Choice, "run", run_for)
    monkeypatch.setattr(conv_algo, "time", type("FakeTime", (), {"perf_counter": staticmethod(lambda: clock[0])}))
    layer = L.Conv2D(16, 3, padding="same")
    layer.forward(rng.standard_normal((2, 9, 9, 16)).astype(np.float32))
    assert [getattr(t, "m", None) for t in layer.algorithms.chosen.values()] == [chosen]
    document = json.loads((tmp_path / "choices.json").read_text())
    assert [e["tile"] for e in document["choices"].values()] == [chosen]


def test_auto_times_each_algorithm_once_per_shape_and_remembers_on_disk(tmp_path, monkeypatch, rng):
    cache = tmp_path / "choices.json"
    monkeypatch.setenv("SCRATCHGAN_CONV_CACHE", str(cache))
    scratchgan.set_backend("numba")
    calls = _timed_trials(monkeypatch)
    x = rng.standard_normal((2, 9, 9, 16)).astype(np.float32)
    model = L.Conv2D(16, 3, padding="same")
    y = model.forward(x, training=True)
    model.backward(np.ones_like(y))
    rounds = 1 + conv_algo.ROUNDS  # a warm-up, then the timed rounds
    assert sorted(calls, key=str) == sorted([None, 2, 4] * rounds * 3, key=str)  # 3 passes
    document = json.loads(cache.read_text())
    assert len(document["choices"]) == 3 and all(set(e["ms"]) == {"im2col", "winograd2", "winograd4"}
                                                  for e in document["choices"].values())
    calls.clear()
    model.forward(x)  # the same shape again: nothing timed
    assert calls == []
    monkeypatch.setattr(conv_algo.ChoiceCache, "_default", None)  # as a fresh process: the file is read again
    again = L.Conv2D(16, 3, padding="same")
    again.forward(x, training=True)
    assert calls == []
    stored = next(e["tile"] for key, e in document["choices"].items() if key.startswith("forward "))
    assert [getattr(t, "m", None) for t in again.algorithms.chosen.values()] == [stored]


@pytest.mark.parametrize("content", [
    b"\x00\xffnot json", b"[]", json.dumps({"format": "something else"}).encode(),
    json.dumps({"format": conv_algo.CACHE_FORMAT, "version": 99, "choices": {}}).encode(),
    json.dumps({"format": conv_algo.CACHE_FORMAT, "version": 1, "choices": {"k": {"tile": 3}}}).encode(),
    json.dumps({"format": conv_algo.CACHE_FORMAT, "version": 1, "choices": {"k": {"tile": True}}}).encode(),
    json.dumps({"format": conv_algo.CACHE_FORMAT, "version": 1, "choices": {"k": {"tile": 2, "ms": {"a": "x"}}}}).encode(),
], ids=["bytes", "list", "foreign", "version", "tile-3", "tile-bool", "ms-text"])
def test_a_corrupt_or_foreign_cache_is_ignored_with_a_warning_and_rewritten(content, tmp_path, monkeypatch, rng, capsys):
    cache = tmp_path / "choices.json"
    cache.write_bytes(content)
    monkeypatch.setenv("SCRATCHGAN_CONV_CACHE", str(cache))
    scratchgan.set_backend("numba")
    model = L.Conv2D(16, 3, padding="same")
    model.forward(rng.standard_normal((1, 5, 5, 16)).astype(np.float32))
    assert "ignoring the conv-algorithm cache" in capsys.readouterr().err
    assert len(json.loads(cache.read_text())["choices"]) == 1  # measured afresh and written whole


def test_a_cache_that_is_not_a_regular_file_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "dir.json").mkdir()
    monkeypatch.setenv("SCRATCHGAN_CONV_CACHE", str(tmp_path / "dir.json"))
    assert conv_algo.ChoiceCache.default().entries == {}
    assert "ignoring the conv-algorithm cache" in capsys.readouterr().err


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choices=st.dictionaries(st.text(max_size=8), JSON | st.fixed_dictionaries(
           {"tile": st.sampled_from([None, 2, 4, 3, 0, True, "2", 2.0]), "ms": JSON}), max_size=4),
       raw=st.binary(max_size=64), as_bytes=st.booleans())
def test_fuzz_the_cache_reader_never_trusts_a_bad_entry(choices, raw, as_bytes, tmp_path_factory):
    """Whatever the file holds, the reader returns only entries whose tile is None, 2 or 4, or nothing."""
    path = tmp_path_factory.mktemp("fuzz") / "c.json"
    document = {"format": conv_algo.CACHE_FORMAT, "version": 1, "choices": choices}
    path.write_bytes(raw if as_bytes else json.dumps(document).encode())
    entries = conv_algo.ChoiceCache(path).entries
    for key, entry in entries.items():
        assert conv_algo.ChoiceCache(path).get(key).tile in (None, *TILES)
        assert isinstance(entry, dict)


def test_auto_times_winograd_only_where_both_channel_counts_reach_the_minimum(monkeypatch, rng):
    scratchgan.set_backend("numba")
    calls = _timed_trials(monkeypatch)
    thin = conv_algo.MIN_CHANNELS - 1
    for c, f in ((thin, 32), (32, thin)):
        model = L.Conv2D(f, 3, padding="same")
        y = model.forward(rng.standard_normal((2, 6, 6, c)).astype(np.float32), training=True)
        model.backward(np.ones_like(y))
        assert set(model.algorithms.chosen.values()) == {None}
    assert calls == []  # nothing timed: im2col without a trial


def test_the_bench_labels_each_conv_algorithm():
    g = window((8, 8), 5, 1, "same")
    x, k = np.zeros((1, 8, 8, 8), np.float32), np.zeros((5, 5, 8, 8), np.float32)
    assert conv_algo.label("winograd_conv2d_forward", (x, k, None, g, tile(4, 5)), "numba") == "winograd F(4x4,5x5)"
    assert conv_algo.label("conv2d_forward", (x, k, None, g), "numba") == "im2col"
    assert conv_algo.label("conv2d_forward", (x, k[..., :1], None, g), "numba") == "few-filter GEMM"
    assert conv_algo.label("conv2d_forward", (x, k[..., :1], None, g), "numpy") == "im2col"
    assert conv_algo.label("conv2d_backward_weights", (np.zeros((1, 8, 8, 1)), x, g), "numba") == "few-filter GEMM"
    thin_x, thin_k = np.zeros((1, 8, 8, 1), np.float32), np.zeros((5, 5, 1, 8), np.float32)
    assert conv_algo.label("conv2d_forward", (thin_x, thin_k, None, g), "numba") == "few-channel im2col"
    assert conv_algo.label("conv2d_backward_data", (x, thin_k, g), "numba") == "few-channel im2col"
    assert conv_algo.label("conv2d_backward_weights", (x, thin_x, g), "numba") == "few-channel im2col"
    assert conv_algo.label("conv2d_forward", (thin_x, thin_k, None, g), "numpy") == "im2col"
    assert conv_algo.label("leaky_relu_forward", (x, 0.2), "numba") is None
    from scratchgan.bench import op_flops, rate_cell

    assert op_flops("winograd_conv2d_forward", (x, k, None, g, tile(4, 5))) == op_flops("conv2d_forward", (x, k, None, g))
    # on 2x2 blocks: labelled as such, and credited with the stride-2 convolution's FLOPs, not
    # the blocked 3x3 convolution's 36/25 as many
    g2 = window((8, 8), 5, 2, "same")
    args = (x, k, None, g2, tile(4, 3))
    assert conv_algo.label("strided_winograd_conv2d_forward", args, "numba") == "blocked F(4x4,3x3)"
    assert op_flops("strided_winograd_conv2d_forward", args) == op_flops("conv2d_forward", args[:-1]) == \
        2 * 1 * 4 * 4 * 5 * 5 * 8 * 8
    cell, _ = rate_cell(300.0, 200.0, "eGF/s")
    assert "150%" in cell and "fewer multiplications" in cell
    assert "fewer" not in rate_cell(100.0, 200.0, "eGF/s")[0]


def test_the_command_line_takes_conv_algo():
    from scratchgan.cli import build_parser

    assert build_parser().parse_args(["train", "--conv-algo", "winograd"]).conv_algo == "winograd"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--conv-algo", "fft"])


def test_on_the_cupy_backend_layers_run_im2col_and_the_winograd_reference_stays_on_the_device(fake_cupy, rng,
                                                                                                capsys):
    """No Winograd kernels for CUDA: the layers run im2col (``winograd`` says so), and the
    reference, called by hand, computes on the device's arrays."""
    scratchgan.set_backend("cupy")
    scratchgan.set_conv_algo("winograd")
    model = L.Conv2D(4, 3, padding="same")
    model.forward(fake_cupy.asarray(rng.standard_normal((1, 5, 5, 2)).astype(np.float32)))
    assert set(model.algorithms.chosen.values()) == {None}
    assert "the cupy backend has no Winograd kernels" in capsys.readouterr().err
    g = window((6, 5), 3, 1, "same")
    x, k = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((3, 3, 3, 4))
    y = ops.winograd_conv2d_forward(fake_cupy.asarray(x), fake_cupy.asarray(k), None, g, tile(2, 3))
    assert isinstance(y, fake_cupy.ndarray)  # the emulator's device array, not a host copy
    np.testing.assert_allclose(to_host(y), ops.conv2d_forward.reference(x, k, None, g), atol=1e-12)


def test_the_cache_key_names_the_machine_and_changes_with_the_kernels(monkeypatch):
    from scratchgan.kernels.numba import conv as conv_kernels

    g = window((8, 8), 5, 1, "same")
    arrays = (np.zeros((2, 8, 8, 16), np.float32), np.zeros((5, 5, 16, 32), np.float32))
    key = conv_algo.cache_key("forward", g, arrays, "numba")
    assert key.startswith("forward 2x8x8x16;5x5x16x32 8x8->8x8 k5x5 s1x1 pad 2,2,2,2 float32 | cpu=")
    assert all(f"{part}=" in key for part in ("scratchgan", "numpy", "numba", "threads", "kernels"))
    before = conv_algo._code_checksum(conv_kernels, numba_winograd)
    monkeypatch.setattr(numba_winograd, "CHUNK_BYTES", numba_winograd.CHUNK_BYTES * 2)
    assert conv_algo._code_checksum(conv_kernels, numba_winograd) != before
    assert conv_algo.cache_key("forward", g, arrays, "numpy") != key
    from scratchgan.kernels.numba import gemm  # how GEMMs are split changes what is fastest too

    conv_algo._machine_key.cache_clear()
    key = conv_algo.cache_key("forward", g, arrays, "numba")
    monkeypatch.setattr(gemm, "SPLIT_MIN_FLOPS", gemm.SPLIT_MIN_FLOPS + 1)
    conv_algo._machine_key.cache_clear()
    assert conv_algo.cache_key("forward", g, arrays, "numba") != key
    monkeypatch.undo()
    conv_algo._machine_key.cache_clear()


def test_the_cache_key_is_the_same_in_every_process():
    """Another process must find this one's choices: the key may not hold anything that
    differs between runs (a nested code object's repr holds its memory address)."""
    import subprocess
    import sys

    script = ("from scratchgan import backend, conv_algo; backend.set_backend('numba'); "
              "print(conv_algo._machine_key('numba'))")
    keys = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(keys) == 1 and "kernels=" in keys.pop()
    # nested code is hashed by its bytes: two copies of a function with a comprehension (two
    # nested code objects at two addresses) hash alike, and a change inside it does not
    def outer(a):
        return [v + 1 for v in a]

    def outer_again(a):
        return [v + 1 for v in a]

    def outer_changed(a):
        return [v + 2 for v in a]

    assert conv_algo._code_bytes(outer.__code__) == conv_algo._code_bytes(outer_again.__code__)
    assert conv_algo._code_bytes(outer.__code__) != conv_algo._code_bytes(outer_changed.__code__)


def test_the_fallback_note_names_a_transposed_layer_as_the_adjoint_it_runs(rng, capsys):
    scratchgan.set_conv_algo("winograd")
    model = L.Conv2DTranspose(3, 4, strides=2, padding="same", name="up")
    model.forward(rng.standard_normal((1, 4, 4, 2)))
    note = capsys.readouterr().err.strip()
    assert note == ("scratchgan: up (the adjoint of the convolution 8x8->4x4 k4x4 s2x2 pad 1,1,1,1): "
                    "stride 2x2, kernel 4x4 (Winograd serves 3x3 and 5x5 kernels with stride 1, and 5x5 "
                    "with stride 2); it runs im2col"), note
