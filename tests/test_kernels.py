"""Every kernel of each fast backend (Numba on the CPU, CuPy on a GPU) against the NumPy
reference: odd sizes, strides 1-3, both paddings, batch 1, float32 and float64. Then whole
models: equal losses on the backend and on the reference.

The cupy cases are marked ``gpu`` and skip, saying why, where CuPy or a GPU is missing;
on a GPU machine the same cases run there, inputs copied to the device and results back.
"""
import importlib
import itertools
import sys

import numpy as np
import pytest

import scratchgan
from scratchgan import ops, zoo
from scratchgan.backend import BackendError
from scratchgan.ops.geometry import window
from scratchgan.train import GANTrainer
from scratchgan.xp import is_device_array, to_host

DTYPES = [np.float32, np.float64]


def _unavailable(name):
    """None if backend ``name`` runs here, else the reason it does not."""
    try:
        scratchgan.set_backend(name)
        return None
    except BackendError as err:
        return str(err)
    finally:
        scratchgan.set_backend("numpy")


@pytest.fixture(params=["numba", "numba-parallel", pytest.param("cupy", marks=pytest.mark.gpu), "cupy-emulated"])
def backend(request, monkeypatch):
    """The backend under test, by its registry name. "numba-parallel" is the numba backend
    with every kernel on all of Numba's threads (the default runs arrays below 2^22
    elements serially, so the parallel loops need a run of their own). "cupy-emulated" is
    the cupy backend with CuPy faked on the CPU (tests/cuda_on_cpu/fake_cupy.py): launch.py
    and the CUDA kernels' arithmetic, run wherever g++ is; "cupy" is the real thing on a GPU."""
    name = request.param
    if name.startswith("numba"):  # a small Dense GEMM would be NumPy's @ (tests/test_gemm.py): test the path to BLAS
        from scratchgan.kernels.numba import gemm

        monkeypatch.setattr(gemm, "_plain", lambda *sizes: False)
    if name == "numba-parallel":
        if request.function.__name__.startswith("test_models_"):
            pytest.skip("whole models run at the default threshold; the kernels are checked in parallel one by one")
        from scratchgan.kernels.numba import threads

        monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)
        name = "numba"
    if name == "cupy-emulated":
        request.getfixturevalue("fake_cupy")
        name = "cupy"
    why = _unavailable(name)
    if why:
        pytest.skip(f"the {request.param} backend cannot run here: {why}")
    return name


def device(backend, a):
    """``a`` where ``backend`` keeps arrays (a CuPy copy for cupy; unchanged otherwise)."""
    if backend == "cupy" and isinstance(a, np.ndarray):
        import cupy

        return cupy.asarray(a)
    return a


def host(result):
    if isinstance(result, tuple):
        return tuple(host(r) for r in result)
    return result if result is None or np.isscalar(result) else to_host(result)


def tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}


def both(backend, name, *args):
    """(backend's result, reference result) of op ``name``, both on the host. Where the backend
    has no kernel, its dispatcher runs the reference on the backend's arrays: so does this."""
    impl = ops.OPS[name].get(backend, ops.OPS[name]["numpy"])
    impl = getattr(impl, "kernel", impl)  # the kernel itself, also where tiny calls run NumPy (NUMPY_BELOW)
    got = impl(*[device(backend, a) for a in args])
    return host(got), ops.OPS[name]["numpy"](*args)


def assert_close(got, want, dtype):
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, dtype)
        return
    if np.isscalar(want) or np.ndim(want) == 0:
        np.testing.assert_allclose(got, want, **tol(dtype))
        return
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind == "f":
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **tol(dtype))
    else:
        np.testing.assert_array_equal(got.astype(want.dtype), want)


CONV_CASES = [  # (n, h, w, c, kh, kw, f), strides, padding; on numba, c <= 4 takes the few-channel
    # path (transposed workspace), f <= 4 the few-filter one, c = 5 plain im2col
    (n, h, w, c, kh, kw, f, s, pad)
    for (n, h, w, c, kh, kw, f), s, pad in itertools.product(
        [(1, 7, 5, 3, 3, 2, 5), (3, 9, 11, 2, 4, 3, 1), (2, 6, 7, 5, 5, 5, 7), (2, 8, 8, 3, 1, 1, 3),
         (2, 10, 9, 1, 5, 4, 6)],
        [(1, 1), (2, 3), (3, 2)],
        ["same", "valid"],
    )
    if not (pad == "valid" and (kh > h or kw > w))
]


@pytest.fixture(params=[False, True], ids=["one-chunk", "many-chunks"])
def chunking(request, backend, monkeypatch):
    """Also run the chunked im2col path with a tiny chunk (one image per GEMM)."""
    if request.param:
        module = {"numba": "scratchgan.kernels.numba.conv", "cupy": "scratchgan.kernels.cuda.launch"}[backend]
        monkeypatch.setattr(importlib.import_module(module), "CHUNK_BYTES", 1)
        if backend == "numba":  # the few-filter path's workspace has its own budget
            monkeypatch.setattr(importlib.import_module(module), "TAPS_CHUNK_BYTES", 1)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7][0]}{c[7][1]}-{c[8]}")
def test_convolution_kernels(backend, case, dtype, chunking, rng):
    n, h, w, c, kh, kw, f, strides, pad = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    g = window((h, w), (kh, kw), strides, pad)
    y, y_ref = both(backend, "conv2d_forward", x, k, b, g)
    assert_close(y, y_ref, dtype)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_close(*both(backend, "conv2d_backward_data", dy, k, g), dtype)
    assert_close(*both(backend, "conv2d_backward_weights", dy, x, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c, f", [(6, 5), (2, 5), (6, 1)], ids=["im2col", "few-channel", "few-filter"])
def test_backward_data_adds_the_transposed_convolutions_bias(backend, c, f, dtype, rng):
    """A transposed convolution's forward is backward-data plus its bias; every path takes
    the bias in the same call (im2col and few-channel start col2im's sums at it)."""
    k = rng.standard_normal((3, 5, c, f)).astype(dtype)
    g = window((7, 6), (3, 5), (2, 1), "same")
    dy = rng.standard_normal((2, g.ho, g.wo, f)).astype(dtype)
    bias = rng.standard_normal(c).astype(dtype)
    impl = ops.OPS["conv2d_backward_data"].get(backend, ops.conv2d_backward_data.reference)
    got = host(impl(device(backend, dy), device(backend, k), g, bias=device(backend, bias)))
    want = ops.conv2d_backward_data.reference(dy, k, g) + bias
    assert_close(got, want, dtype)
    np.testing.assert_allclose(ops.conv2d_backward_data.reference(dy, k, g, bias=bias), want, rtol=1e-12)


@pytest.mark.parametrize("f", [1, 4, 5])  # both sides of the numba backend's FEW_FILTERS
def test_few_filter_and_im2col_convolutions_agree_at_the_switch(f, rng):
    backend = "numba"  # the few-filter kernels are Numba's alone
    why = _unavailable(backend)
    if why:
        pytest.skip(why)
    x = rng.standard_normal((2, 9, 7, 6))
    k = rng.standard_normal((3, 5, 6, f))
    g = window((9, 7), (3, 5), (2, 1), "same")
    y, y_ref = both(backend, "conv2d_forward", x, k, None, g)
    assert_close(y, y_ref, np.float64)
    dy = rng.standard_normal(y_ref.shape)
    assert_close(*both(backend, "conv2d_backward_data", dy, k, g), np.float64)
    assert_close(*both(backend, "conv2d_backward_weights", dy, x, g), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, inputs, units", [(1, 3, 1), (7, 13, 1), (5, 9, 11), (0, 4, 3), (300, 1200, 1)])
def test_dense_kernels(backend, n, inputs, units, dtype, rng):
    """One unit (an outer product on numba), several, no rows, and outputs big enough for the pool."""
    x, k = rng.standard_normal((n, inputs)).astype(dtype), rng.standard_normal((inputs, units)).astype(dtype)
    b, dy = rng.standard_normal(units).astype(dtype), rng.standard_normal((n, units)).astype(dtype)
    assert_close(*both(backend, "dense_forward", x, k, b), dtype)
    assert_close(*both(backend, "dense_forward", x, k, None), dtype)
    assert_close(*both(backend, "dense_backward_data", dy, k), dtype)
    assert_close(*both(backend, "dense_backward_weights", dy, x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 7), (3, 5, 7, 2), (13,)])
def test_elementwise_kernels(backend, shape, dtype, rng):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    for slope in (0.0, 0.3):
        y, y_ref = both(backend, "leaky_relu_forward", x, slope)
        assert_close(y, y_ref, dtype)
        assert_close(*both(backend, "leaky_relu_backward", dy, y_ref[1], slope), dtype)
    for name in ("tanh", "sigmoid"):
        y, y_ref = both(backend, f"{name}_forward", x)
        assert_close(y, y_ref, dtype)
        assert_close(*both(backend, f"{name}_backward", dy, y_ref), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (3, 5, 7, 9), (1, 2, 3, 4)])
def test_batchnorm_kernels(backend, shape, dtype, rng):
    x = (5 * rng.standard_normal(shape) + 12).astype(dtype)
    c = shape[-1]
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    out, ref = both(backend, "batchnorm_forward_train", x, gamma, beta, 1e-3)
    assert_close(out, ref, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    assert_close(*both(backend, "batchnorm_backward_train", dy, ref[1], ref[2], gamma), dtype)
    mm, mv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    out, ref = both(backend, "batchnorm_forward_infer", x, gamma, beta, mm, mv, 1e-3)
    assert_close(out, ref, dtype)
    assert_close(*both(backend, "batchnorm_backward_infer", dy, ref[1], ref[2]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 7, 9, 3), (3, 6, 8, 17)], ids=["odd", "tiled-by-2x2"])
@pytest.mark.parametrize("pool, strides, pad", [((2, 2), (2, 2), "valid"), ((3, 2), (1, 3), "same"),
                                                 ((3, 3), (2, 2), "same"), ((2, 3), (3, 1), "valid"),
                                                 ((2, 2), (2, 2), "same")])
def test_pooling_kernels(backend, shape, pool, strides, pad, dtype, rng):
    """On 6x8 a 2x2 pool with stride 2 tiles the image exactly (the kernel's one-write path);
    on 7x9 it leaves a row and a column out, and the other windows overlap or pad."""
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, :2, 0] = 1.5  # a tie: the first maximum wins on both backends
    g = window(shape[1:3], pool, strides, pad)
    (y, arg), (y_ref, arg_ref) = both(backend, "maxpool_forward", x, g)
    assert_close(y, y_ref, dtype)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_close(*both(backend, "maxpool_backward", dy, arg_ref, g), dtype)
    for size in ((2, 2), (1, 3), (3, 2)):
        up, up_ref = both(backend, "upsample_nearest_forward", x, size)
        assert_close(up, up_ref, dtype)
        d = rng.standard_normal(up_ref.shape).astype(dtype)
        assert_close(*both(backend, "upsample_nearest_backward", d, size), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 5, 16), (3, 1, 7, 33), (0, 20), (4, 1), (3, 29, 31, 17), (2049, 16)])
def test_bias_gradient_kernel(backend, shape, dtype, rng):
    """Channel sums: narrow or short (NumPy's sum on numba), tall and wide enough for the
    blocked kernel (2,697 and 2,049 rows), and no rows."""
    dy = rng.standard_normal(shape).astype(dtype)
    assert_close(*both(backend, "bias_backward", dy), dtype)


def test_channel_sums_keep_float32_digits_over_many_rows(rng):
    """10^6 rows of 1 + noise: a float32 running sum drifts by 1.3e-5 of the total; the
    kernel's short float32 runs added into float64 stay within float32 rounding of it."""
    from scratchgan.kernels.numba import reductions

    dy = (1 + 0.01 * rng.standard_normal((1_000_000, 16))).astype(np.float32)
    exact = dy.astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(reductions.bias_backward(dy), exact, rtol=1e-6)


def test_launchers_refuse_arrays_their_loops_would_overrun(rng):
    from scratchgan.kernels.numba import batchnorm, pooling
    from scratchgan.kernels.numba.checks import KernelArgumentError

    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    three, two = np.ones(3, np.float32), np.ones(2, np.float32)
    with pytest.raises(KernelArgumentError, match=r"gamma has shape \(2,\), expected \(3,\)"):
        batchnorm.batchnorm_forward_train(x, two, three, 1e-3)
    with pytest.raises(KernelArgumentError, match="xhat has shape"):
        batchnorm.batchnorm_backward_train(x, x[:1], three, three)
    with pytest.raises(KernelArgumentError, match="moving_var"):
        batchnorm.batchnorm_forward_infer(x, three, three, three, two, 1e-3)
    with pytest.raises(KernelArgumentError, match="scale"):
        batchnorm.batchnorm_backward_infer(x, x, two)
    g = window((4, 4), (2, 2), (2, 2), "valid")
    with pytest.raises(KernelArgumentError, match=r"expected \(N, 4, 4, C\)"):
        pooling.maxpool_forward(x[:, :3], g)
    y, argmax = pooling.maxpool_forward(x, g)
    with pytest.raises(KernelArgumentError, match="argmax has shape"):
        pooling.maxpool_backward(y, argmax[:, :1], g)
    with pytest.raises(KernelArgumentError, match="dy has shape"):
        pooling.maxpool_backward(y[:, :1], argmax[:, :1], g)
    with pytest.raises(KernelArgumentError, match="not a multiple of 2x2"):
        pooling.upsample_nearest_backward(x[:, :3], (2, 2))
    from scratchgan.kernels.numba import conv

    k = np.ones((3, 3, 3, 8), np.float32)
    dy = np.ones((2, 4, 4, 8), np.float32)
    with pytest.raises(KernelArgumentError, match=r"bias has shape \(8,\), expected \(3,\)"):
        conv.conv2d_backward_data(dy, k, window((4, 4), (3, 3), (1, 1), "same"), bias=np.ones(8, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernels_drop_the_same_elements(backend, dtype, rng):
    """Given the reference's uniform draws, the kernel keeps and scales the same elements.
    (Numba draws them from the same NumPy generator; the GPU draws its own, so it is handed them.)"""
    x = rng.standard_normal((3, 5, 7)).astype(dtype)
    want = ops.OPS["dropout_forward"]["numpy"](x, 0.4, np.random.default_rng(5))
    if backend == "cupy":
        from scratchgan.kernels.cuda import launch

        u = np.random.default_rng(5).random(x.shape, dtype=np.float32)  # the reference's draws
        got = host(launch.dropout_with_uniforms(device(backend, x), 0.4, device(backend, u)))
    else:
        got = ops.OPS["dropout_forward"][backend](x, 0.4, np.random.default_rng(5))
    assert_close(got, want, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    assert_close(*both(backend, "dropout_backward", dy, want[1], want[2]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_kernels(backend, dtype, rng):
    p = rng.uniform(0, 1, (7, 1)).astype(dtype)
    p[0, 0], p[1, 0] = 0.0, 1.0  # clipped: zero gradient on both backends
    t = rng.uniform(0, 1, (7, 1)).astype(dtype)
    (loss, pc), (loss_ref, pc_ref) = both(backend, "bce_forward", p, t)
    assert_close((loss, pc), (loss_ref, pc_ref), dtype)
    assert_close(*both(backend, "bce_backward", p, pc_ref, t), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_nan_propagates_as_in_the_reference(backend, dtype, rng):
    """A diverging model makes NaNs: every backend must pass them on exactly as NumPy does, so
    that the trainer's finite-loss check trips instead of training on a made-up number."""
    p = np.array([[0.3], [np.nan], [0.9], [0.5]], dtype)
    t = np.array([[1.0], [0.0], [1.0], [0.0]], dtype)
    (loss, pc), (loss_ref, pc_ref) = both(backend, "bce_forward", p, t)
    assert np.isnan(loss_ref) and np.isnan(loss)
    np.testing.assert_array_equal(pc, pc_ref)  # NaN where NaN, the clipped values elsewhere
    np.testing.assert_array_equal(*both(backend, "bce_backward", p, pc_ref, t))
    z = np.array([[2.0], [np.nan], [-1.0]], dtype)
    (loss, sig), (loss_ref, sig_ref) = both(backend, "bce_logits_forward", z, t[:3])
    assert np.isnan(loss_ref) and np.isnan(loss)
    assert_close(sig, sig_ref, dtype)

    x = (5 * rng.standard_normal((3, 2, 2, 3)) + 12).astype(dtype)
    x[1, 0, 1, 2] = np.nan  # channel 2 is poisoned, channels 0 and 1 are not
    gamma, beta = np.ones(3, dtype), np.zeros(3, dtype)
    out, ref = both(backend, "batchnorm_forward_train", x, gamma, beta, 1e-3)
    for got, want in zip(out, ref):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(ref[4][2]) and not np.isnan(ref[4][:2]).any()  # the variance of channel 2 only

    x = rng.standard_normal((2, 5, 4, 2)).astype(dtype)
    x[0, 0, 1, 0] = x[1, 4, 3, 1] = np.nan  # the second tap of a window; one of a window with padding
    g = window((5, 4), (2, 2), (2, 2), "same")
    (y, arg), (y_ref, arg_ref) = both(backend, "maxpool_forward", x, g)
    assert np.isnan(y_ref[0, 0, 0, 0]) and np.isnan(y_ref[1, 2, 1, 1]) and np.isnan(y_ref).sum() == 2
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, extra", [
    ("adam_update", (1e-3, 0.9, 0.999, 1e-7, 3)),
    ("sgd_update", (1e-2, 0.9, True)),
    ("sgd_update", (1e-2, 0.9, False)),
    ("sgd_update", (1e-2, 0.0, False)),
    ("rmsprop_update", (1e-3, 0.9, 1e-7)),
])
def test_optimizer_kernels_update_in_place(backend, name, extra, dtype, rng):
    shape = (5, 3, 7)
    param, grad = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    slots = {"adam_update": 2, "rmsprop_update": 1}.get(name, 1)
    states = [np.abs(rng.standard_normal(shape)).astype(dtype) for _ in range(slots)]
    if name == "sgd_update" and extra[1] == 0:
        states = [None]
    runs = []
    for which in (backend, "numpy"):
        p = device(which, param.copy())
        s = [None if a is None else device(which, a.copy()) for a in states]
        ops.OPS[name][which](p, device(which, grad), *s, *extra)
        runs.append(host((p, *[a for a in s if a is not None])))
    assert_close(runs[0], runs[1], dtype)
    assert not np.array_equal(runs[0][0], param)


def test_numba_float32_kernels_compute_in_float32_as_the_reference_does(backend, rng):
    """Element-wise float32 kernels round every step as the reference's float32 NumPy does:
    the results are bit for bit the same. A constant written into a kernel (``1 - b1``,
    ``1 - y*y``) is typed float64 by Numba, and the loop then computes in float64 and rounds
    once at the end (different last bits), scalar instead of vectorised (Adam 3.7x slower)."""
    if backend != "numba":
        pytest.skip("CUDA kernels may contract a multiply and an add into one rounding (nvcc's default)")
    shape = (37, 29)
    x, y, dy = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    y = np.tanh(y)
    mask = x > 0
    for name, args in [("tanh_backward", (dy, y)), ("sigmoid_backward", (dy, 1 / (1 + np.exp(-y)))),
                       ("leaky_relu_forward", (x, 0.2)), ("leaky_relu_backward", (dy, mask, 0.2)),
                       ("dropout_backward", (dy, mask.astype(np.uint8), np.float32(1 / 0.7)))]:
        got, want = both(backend, name, *args)
        for g, w in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
            assert g.dtype == w.dtype and np.array_equal(g, w), name
    for name, extra, slots in [("adam_update", (1e-3, 0.5, 0.999, 1e-7, 3), 2), ("rmsprop_update", (1e-3, 0.9, 1e-7), 1),
                               ("sgd_update", (1e-2, 0.9, True), 1), ("sgd_update", (1e-2, 0.9, False), 1)]:
        states = [np.abs(rng.standard_normal(shape)).astype(np.float32) for _ in range(slots)]
        runs = []
        for which in (backend, "numpy"):
            arrays = [x.copy()] + [s.copy() for s in states]
            ops.OPS[name][which](arrays[0], dy, *arrays[1:], *extra)
            runs.append(arrays)
        for g, w in zip(*runs):
            assert np.array_equal(g, w), (name, extra)


def test_numba_calls_on_tiny_arrays_run_numpy_where_its_table_says_with_the_kernels_bits(rng):
    """NUMPY_BELOW: below its size an op's call runs the reference (a kernel launch cost more
    there), at or above it the kernel; for the ops listed the float32 bits are the same."""
    from scratchgan.backend import numpy_below
    from scratchgan.kernels.numba import KERNELS, NUMPY_BELOW

    ran = []
    rule = numpy_below(4, lambda a: ran.append("reference"), lambda a: ran.append("kernel"))
    rule(np.ones(3)), rule(np.ones((2, 2))), rule(np.ones(5))
    assert ran == ["reference", "kernel", "kernel"]
    scratchgan.set_backend("numba")
    try:
        for name, size in NUMPY_BELOW.items():
            registered = ops.OPS[name]["numba"]
            assert registered.kernel is KERNELS[name]
            for n in (size - 1, size):
                dy = rng.standard_normal((n, 1)).astype(np.float32)
                y = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
                want = ops.OPS[name]["numpy"](dy, y)
                assert np.array_equal(registered(dy, y), want) and np.array_equal(registered.kernel(dy, y), want)
    finally:
        scratchgan.set_backend("numpy")


def _first_losses(name, dtype, backend, monkeypatch, iterations=3):
    # cifar_frog's G is 6.3 M parameters of 32x32 convolutions, and the emulated CUDA kernels
    # run one (block, thread) at a time on the CPU: keep those short
    emulated = backend == "cupy" and getattr(sys.modules.get("cupy"), "EMULATED", False)
    small = name == "cifar_frog" or emulated
    if emulated and name == "cifar_frog":
        iterations = 1  # about 35 s on 2 cores even so
    if backend == "cupy":  # the GPU's dropout draws its own uniforms: hand it the reference's
        import cupy

        from scratchgan.kernels.cuda import launch

        monkeypatch.setitem(ops.OPS["dropout_forward"], "cupy", lambda x, rate, rng: launch.dropout_with_uniforms(
            x, rate, cupy.asarray(rng.random(x.shape, dtype=np.float32))))
    losses = {}
    for which in ("numpy", backend):
        scratchgan.set_backend(which)
        g, d, recipe = zoo.build(name, seed=4)
        g.astype(dtype), d.astype(dtype)
        recipe.override(batch_size=2 if small else 6)
        lo, hi = recipe.data_range
        data = np.random.default_rng(0).uniform(lo, hi, (24, *recipe.image_shape)).astype(dtype)
        trainer = GANTrainer(g, d, recipe, data, seed=4)
        losses[which] = np.array([trainer.step() for _ in range(min(2, iterations) if small else iterations)])
    scratchgan.set_backend("numpy")
    return losses[backend], losses["numpy"]


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_models_train_alike_on_both_backends(backend, name, monkeypatch):
    """Same seed, same data: the first iterations' losses agree, in float64 to rounding."""
    got, want = _first_losses(name, np.float64, backend, monkeypatch)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_models_train_alike_in_float32(backend, name, monkeypatch):
    """In float32 too. cifar_frog only for its first iteration: RMSprop's first step moves
    every weight by about lr * sqrt(10) * sign(g) whatever |g| is, so a gradient that is
    zero up to rounding gets a full step whose sign is the rounding's (float64 agrees)."""
    if name == "cifar_frog" and getattr(sys.modules.get("cupy"), "EMULATED", False) and backend == "cupy":
        pytest.skip("emulated CUDA: cifar_frog is checked in float64 only (its kernels are the same, and slow here)")
    got, want = _first_losses(name, np.float32, backend, monkeypatch)
    if name == "cifar_frog":
        got, want = got[:1], want[:1]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_every_op_has_a_numba_kernel_or_a_reason_not_to():
    from scratchgan.kernels.numba import NUMPY_IS_FASTER

    scratchgan.set_backend("numba")
    assert scratchgan.get_backend() == "numba"
    missing = sorted(name for name, impls in ops.OPS.items() if "numba" not in impls)
    # composed ops (the blocked Winograd passes) reach the kernels through the ops they call
    assert missing == sorted((*NUMPY_IS_FASTER, *ops.registry.COMPOSED))
    assert ops.registry.COMPOSED == {f"strided_winograd_conv2d_{p}" for p in ("forward", "backward_data",
                                                                           "backward_weights")}


# --- the GPU alone -------------------------------------------------------------------------
gpu = pytest.mark.gpu


@pytest.fixture(params=[pytest.param("cupy", marks=pytest.mark.gpu), "cupy-emulated"])
def cupy_backend(request):
    if request.param == "cupy-emulated":
        request.getfixturevalue("fake_cupy")
    why = _unavailable("cupy")
    if why:
        pytest.skip(f"the cupy backend cannot run here: {why}")
    scratchgan.set_backend("cupy")
    yield importlib.import_module("cupy")
    scratchgan.set_backend("numpy")


@gpu
def test_every_op_has_a_cuda_kernel_or_runs_its_reference_on_the_gpu(cupy_backend):
    from scratchgan.kernels.cuda.launch import KERNELS, REFERENCE_ON_GPU

    assert sorted(set(ops.OPS) - set(KERNELS)) == sorted((*REFERENCE_ON_GPU, *ops.registry.COMPOSED))
    x = cupy_backend.asarray(np.random.default_rng(0).standard_normal((3, 4)), dtype=np.float32)
    for name in ("dense_forward", "tanh_forward"):  # the references stay on the device
        out = ops.OPS[name]["numpy"](*((x, cupy_backend.ones((4, 2), np.float32), None) if name == "dense_forward" else (x,)))
        assert isinstance(out, cupy_backend.ndarray)


@gpu
def test_gpu_dropout_draws_are_uniform_and_reproducible(cupy_backend):
    from scratchgan.kernels.cuda import launch

    u = launch.device_uniform(7, (1000, 1001))
    assert u.dtype == np.float32 and float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 2e-3 and abs(float(u.var()) - 1 / 12) < 2e-3
    assert bool((u == launch.device_uniform(7, (1000, 1001))).all())
    assert float((u == launch.device_uniform(8, (1000, 1001))).mean()) < 1e-3
    x = cupy_backend.ones((500, 1001), np.float32)
    y, keep, scale = launch.dropout_forward(x, 0.4, np.random.default_rng(0))
    assert abs(float(keep.mean()) - 0.6) < 5e-3
    assert bool((y == keep * np.float32(1 / 0.6)).all())


@gpu
def test_training_on_the_gpu_keeps_every_array_on_the_device(cupy_backend):
    g, d, recipe = zoo.build("dcgan", seed=0)
    recipe.override(batch_size=8)
    data = np.random.default_rng(0).uniform(0, 1, (32, 28, 28, 1)).astype(np.float32)
    trainer = GANTrainer(g, d, recipe, data, seed=0)
    trainer.step()
    arrays = [trainer.data, *g.params.values(), *d.params.values(),
              *(a for opt in (trainer.g_opt, trainer.d_opt) for slots in opt.state.values() for a in slots.values())]
    assert all(isinstance(a, cupy_backend.ndarray) for a in arrays)
    with pytest.raises(scratchgan.layers.base.LayerError, match="input is a NumPy \\(host\\) array but the weights are CuPy"):
        g.forward(np.zeros((2, 100), np.float32))
    assert isinstance(g.predict(np.zeros((2, 100), np.float32)), cupy_backend.ndarray)  # predict moves its input


@pytest.mark.parametrize("model", ["mlp", "dcgan_bn"])
def test_the_command_line_trains_samples_and_evaluates_on_the_gpu(cupy_backend, model, tmp_path, capsys):
    """train (checkpoint, curves, GIF), resume, sample and evaluate with --backend cupy."""
    from PIL import Image

    from scratchgan.cli import main

    run = tmp_path / "run"
    common = ["--backend", "cupy"]
    size = ["--batch-size", "4"] if model != "mlp" else []
    assert main([*common, "train", "--model", model, "--iterations", "2", "--sample-interval", "1",
                 "--no-progress", "--out", str(run), *size]) == 0
    assert main([*common, "train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 0
    assert (run / "checkpoint.npz").is_file() and (run / "curves.png").is_file()
    assert main([*common, "sample", str(run), "--n", "4", "--nice", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 28
    assert main([*common, "evaluate", str(run), "--n", "200", "--json"]) == 0
    assert '"frechet_distance"' in capsys.readouterr().out


def test_a_model_built_on_the_host_moves_to_the_gpu_with_to_backend(cupy_backend, rng):
    scratchgan.set_backend("numpy")
    g, _, _ = zoo.build("dcgan_bn", seed=0)
    z = rng.standard_normal((3, 100)).astype(np.float32)
    want = g.predict(z)
    scratchgan.set_backend("cupy")
    with pytest.raises(scratchgan.layers.base.LayerError, match="call model.to_backend"):
        g.forward(cupy_backend.asarray(z), training=False)
    g.to_backend()
    assert all(isinstance(a, cupy_backend.ndarray) for a in [*g.params.values(), *g.buffers.values()])
    np.testing.assert_allclose(to_host(g.predict(z)), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["dcgan", "dcgan_upsample", "dcgan_bn"])
def test_gpu_training_reads_nothing_back_between_the_iterations_it_logs(fake_cupy, model):
    """No device-to-host read inside a training step: losses and accuracy stay on the GPU
    until the loop reads them (every tenth iteration, and at the end), then come back in
    one read. Counted on the emulated GPU, whose arrays log every read."""
    from cuda_on_cpu.fake_cupy import READS

    scratchgan.set_backend("cupy")
    g, d, recipe = zoo.build(model, seed=0)
    recipe.override(batch_size=4)
    lo, hi = recipe.data_range
    trainer = GANTrainer(g, d, recipe, np.random.default_rng(0).uniform(lo, hi, (16, 28, 28, 1)).astype(np.float32), seed=0)
    trainer.step()  # the first step may set things up
    READS.clear()
    trainer.advance()
    assert READS == [], READS
    trainer.train(13, sample_interval=100, log=lambda *_: None, progress=False)
    # iterations 2..10 are read at 10 (9 x 3 numbers), 11..13 at the end (3 x 3): two reads in all
    assert sorted(READS) == [9, 27], READS
    assert [row[0] for row in trainer.history] == list(range(1, 14))
    assert all(np.isfinite(row[1:4]).all() for row in trainer.history)


def test_a_gpu_loss_that_diverges_between_reads_is_caught_before_the_next_checkpoint(fake_cupy, tmp_path):
    from scratchgan.checkpoint import load as load_checkpoint
    from scratchgan.rundir import Run
    from scratchgan.train import TrainingError

    scratchgan.set_backend("cupy")
    g, d, recipe = zoo.build("mlp", seed=0)
    recipe.override(batch_size=8)
    trainer = GANTrainer(g, d, recipe, np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32),
                         seed=0, run=Run.create(tmp_path))
    real_advance = trainer.advance

    def advance_that_diverges():
        if trainer.iteration == 5:
            trainer.G.params["dense/kernel"][...] = np.inf
        real_advance()

    trainer.advance = advance_that_diverges
    with pytest.raises(TrainingError, match="iteration 6: loss is not finite"):  # read at 8, named as 6
        trainer.train(iterations=12, sample_interval=4, log=lambda line: None, progress=False)
    _, _, _, arrays = load_checkpoint(tmp_path / "checkpoint.npz")
    assert int(arrays["iteration"]) == 4


def test_predictions_outside_0_1_are_refused_on_the_host_and_make_a_gpu_loss_nan(fake_cupy):
    """The host refuses them at once; on the GPU, where looking costs a read, the loss is
    NaN (no read), which the loop's finiteness check reports."""
    from cuda_on_cpu.fake_cupy import READS

    from scratchgan.losses import BinaryCrossentropy, LossError

    scratchgan.set_backend("cupy")
    bce = BinaryCrossentropy()
    good, bad = fake_cupy.asarray(np.full((4, 1), 0.5)), fake_cupy.asarray(np.array([[0.5], [1.5]]))
    READS.clear()
    good_loss, bad_loss = bce.forward(good, 1.0), bce.forward(bad, 1.0)
    assert READS == [], READS
    assert is_device_array(good_loss) and good_loss.shape == () and good_loss.dtype == np.float64
    assert float(good_loss) == pytest.approx(np.log(2)) and np.isnan(float(bad_loss))
    with pytest.raises(LossError, match=r"probabilities in \[0, 1\]"):
        bce.forward(np.array([[0.5], [1.5]]), 1.0)


@pytest.mark.parametrize("shape", [(0, 4), (0, 3, 3, 2), (5, 0)])
def test_batch_statistics_of_nothing_are_refused(backend, shape):
    """An empty batch (or no channel) has no mean: the same clear error on every backend,
    not NaN, uninitialised memory or an IndexError."""
    x = np.zeros(shape, np.float32)
    gamma, beta = np.ones(shape[-1], np.float32), np.zeros(shape[-1], np.float32)
    for which in ("numpy", backend):
        impl = ops.OPS["batchnorm_forward_train"].get(which, ops.OPS["batchnorm_forward_train"]["numpy"])
        with pytest.raises(ValueError, match=r"needs at least one value per channel, got an input of shape"):
            impl(device(which, x), device(which, gamma), device(which, beta), 1e-3)


def test_batchnorm_layer_refuses_an_empty_batch_and_keeps_its_statistics():
    layer = scratchgan.layers.BatchNormalization()
    layer.build((None, 3))
    before = layer.buffers["moving_mean"].copy()
    with pytest.raises(ValueError, match="needs at least one value per channel, got an input of shape \\(0, 3\\)"):
        layer.forward(np.zeros((0, 3), np.float32))  # the op refuses before any statistic moves
    np.testing.assert_array_equal(layer.buffers["moving_mean"], before)
    assert layer.forward(np.zeros((0, 3), np.float32), training=False).shape == (0, 3)  # inference: nothing to refuse


@pytest.mark.parametrize("dtype, other", [(np.float32, np.float64), (np.float64, np.float32)])
def test_cuda_launchers_cast_what_they_read_and_refuse_mismatched_state(fake_cupy, dtype, other, rng):
    """A float32 model given float64 targets, BatchNorm parameters or gradients (or the reverse):
    the CUDA kernels get arrays of their own dtype, as the reference computes; optimizer state
    of another dtype, which a kernel would update in place, is a clear error."""
    scratchgan.set_backend("cupy")
    from scratchgan.kernels.cuda import launch

    try:
        cp = fake_cupy
        p = rng.uniform(0.05, 0.95, (6, 1)).astype(dtype)
        t = rng.uniform(0, 1, (6, 1)).astype(other)
        loss, pc = launch.bce_forward(cp.asarray(p), cp.asarray(t))
        loss_ref, pc_ref = ops.bce_forward.reference(p, t.astype(dtype))
        assert loss == pytest.approx(loss_ref, rel=1e-5)
        assert_close(to_host(launch.bce_backward(cp.asarray(p), cp.asarray(pc_ref.astype(other)), cp.asarray(t))),
                     ops.bce_backward.reference(p, pc_ref.astype(other).astype(dtype), t.astype(dtype)), dtype)

        x = (3 * rng.standard_normal((4, 5, 3)) + 2).astype(dtype)
        gamma, beta = rng.uniform(0.5, 2, 3).astype(other), rng.standard_normal(3).astype(other)
        got = launch.batchnorm_forward_train(cp.asarray(x), cp.asarray(gamma), cp.asarray(beta), 1e-3)
        want = ops.batchnorm_forward_train.reference(x, gamma.astype(dtype), beta.astype(dtype), 1e-3)
        assert all(g.dtype == dtype for g in got)
        assert_close(tuple(to_host(g) for g in got), want, dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        got = launch.batchnorm_backward_train(cp.asarray(dy), cp.asarray(want[1].astype(other)),
                                              cp.asarray(want[2].astype(other)), cp.asarray(gamma))
        assert_close(tuple(to_host(g) for g in got),
                     ops.batchnorm_backward_train.reference(dy, want[1].astype(other).astype(dtype),
                                                            want[2].astype(other).astype(dtype), gamma.astype(dtype)), dtype)

        param = cp.asarray(rng.standard_normal((3, 4)).astype(dtype))
        grad = rng.standard_normal((3, 4)).astype(other)
        m, v = cp.zeros((3, 4), dtype), cp.zeros((3, 4), dtype)
        want_p, want_m, want_v = to_host(param).copy(), np.zeros((3, 4), dtype), np.zeros((3, 4), dtype)
        launch.adam_update(param, cp.asarray(grad), m, v, 1e-3, 0.9, 0.999, 1e-7, 1)
        ops.adam_update.reference(want_p, grad.astype(dtype), want_m, want_v, 1e-3, 0.9, 0.999, 1e-7, 1)
        assert_close(to_host(param), want_p, dtype)
        with pytest.raises(TypeError, match=rf"Adam's m is updated in place .* contiguous {np.dtype(dtype)} array"):
            launch.adam_update(param, cp.asarray(grad), cp.zeros((3, 4), other), v, 1e-3, 0.9, 0.999, 1e-7, 2)
        with pytest.raises(TypeError, match="SGD's velocity is updated in place"):
            launch.sgd_update(param, cp.asarray(grad), cp.zeros((3, 4), other), 1e-2, 0.9, True)
        with pytest.raises(TypeError, match="RMSprop's v is updated in place"):
            launch.rmsprop_update(param, cp.asarray(grad), cp.zeros((4, 3), dtype), 1e-3, 0.9, 1e-7)
    finally:
        scratchgan.set_backend("numpy")


@pytest.mark.parametrize("case", [(3, 9, 7, 4, 3, 5, 6, (2, 1), "same"), (5, 6, 6, 2, 2, 2, 3, (1, 1), "valid")])
def test_cuda_convolutions_reuse_one_workspace_across_uneven_chunks(fake_cupy, monkeypatch, case, rng):
    """Every chunk of a call writes its patches into one workspace sized for the largest chunk
    (the last chunk is smaller); the results match the reference."""
    n, h, w, c, kh, kw, f, strides, pad = case
    scratchgan.set_backend("cupy")
    from scratchgan.kernels.cuda import launch

    try:
        g = window((h, w), (kh, kw), strides, pad)
        monkeypatch.setattr(launch, "CHUNK_BYTES", 2 * g.ho * g.wo * kh * kw * c * 8)  # 2 images a chunk: 2, 2, 1
        x = rng.standard_normal((n, h, w, c))
        k = rng.standard_normal((kh, kw, c, f))
        cp = fake_cupy
        assert_close(to_host(launch.conv2d_forward(cp.asarray(x), cp.asarray(k), None, g)),
                     ops.conv2d_forward.reference(x, k, None, g), np.float64)
        dy = rng.standard_normal((n, g.ho, g.wo, f))
        assert_close(to_host(launch.conv2d_backward_data(cp.asarray(dy), cp.asarray(k), g)),
                     ops.conv2d_backward_data.reference(dy, k, g), np.float64)
        assert_close(to_host(launch.conv2d_backward_weights(cp.asarray(dy), cp.asarray(x), g)),
                     ops.conv2d_backward_weights.reference(dy, x, g), np.float64)
    finally:
        scratchgan.set_backend("numpy")


def test_cuda_dropout_reuses_its_draws_buffer_without_touching_earlier_masks(fake_cupy, rng):
    scratchgan.set_backend("cupy")
    from scratchgan.kernels.cuda import launch

    try:
        x = fake_cupy.asarray(rng.standard_normal((64, 32)).astype(np.float32))
        draws = np.random.default_rng(0)
        y1, keep1, _ = launch.dropout_forward(x, 0.5, draws)
        first = to_host(keep1).copy()
        y2, keep2, _ = launch.dropout_forward(x, 0.5, draws)
        np.testing.assert_array_equal(to_host(keep1), first)  # the first mask is its own array
        assert (to_host(keep2) != first).any() and 0.4 < first.mean() < 0.6
        assert len(launch._UNIFORMS) == 1  # one draws buffer for the shape, reused
    finally:
        scratchgan.set_backend("numpy")


def test_cuda_per_step_scalars_reach_the_kernels_through_buffers_kept_across_steps(fake_cupy, rng):
    """Adam's step size, RMSprop's decayed rate and dropout's seed change every step; the kernels
    read them from one-element device buffers, the same buffer every step (what a captured CUDA
    graph keeps), holding the latest value."""
    scratchgan.set_backend("cupy")
    from scratchgan.kernels.cuda import launch

    opt = scratchgan.optimizers.Adam(lr=1e-3)
    params = {"w": fake_cupy.asarray(rng.standard_normal(7).astype(np.float32))}
    grads = {"w": fake_cupy.asarray(rng.standard_normal(7).astype(np.float32))}
    buffers = []
    for t in (1, 2):
        opt.step(params, grads)
        m = opt.state["w"]["m"]
        buffers.append(launch._SCALARS[("adam step size", id(m))])
        assert float(buffers[-1][0]) == pytest.approx(1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t), rel=1e-6)
    assert buffers[0] is buffers[1]
    launch.dropout_forward(fake_cupy.asarray(np.ones((3, 5), np.float32)), 0.5, np.random.default_rng(0))
    seed = launch._SCALARS[("dropout seed", (3, 5))]
    assert seed.dtype == np.uint64 and seed.shape == (1,)
    assert int(seed[0]) == np.random.default_rng(0).integers(0, 2**63)
