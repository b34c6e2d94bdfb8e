"""Every Numba kernel against the NumPy reference: odd sizes, strides 1-3, both paddings,
batch 1, float32 and float64. Then whole models: equal losses on both backends."""
import itertools

import numpy as np
import pytest

pytest.importorskip("numba")

import scratchgan  # noqa: E402
from scratchgan import ops, zoo  # noqa: E402
from scratchgan.kernels.numba import conv as numba_conv  # noqa: E402
from scratchgan.train import GANTrainer  # noqa: E402

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}


def both(name, *args):
    """(numba result, reference result) of op ``name``."""
    return ops.OPS[name]["numba"](*args), ops.OPS[name]["numpy"](*args)


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


CONV_CASES = [  # (n, h, w, c, kh, kw, f), strides, padding
    (n, h, w, c, kh, kw, f, s, pad)
    for (n, h, w, c, kh, kw, f), s, pad in itertools.product(
        [(1, 7, 5, 3, 3, 2, 5), (3, 9, 11, 2, 4, 3, 1), (2, 6, 7, 5, 5, 5, 7), (2, 8, 8, 3, 1, 1, 3)],
        [(1, 1), (2, 3), (3, 2)],
        ["same", "valid"],
    )
    if not (pad == "valid" and (kh > h or kw > w))
]


@pytest.fixture(params=[False, True], ids=["one-chunk", "many-chunks"])
def chunking(request, monkeypatch):
    """Also run the chunked im2col path with a tiny chunk (one image per GEMM)."""
    if request.param:
        monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 1)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7][0]}{c[7][1]}-{c[8]}")
def test_convolution_kernels(case, dtype, chunking, rng):
    n, h, w, c, kh, kw, f, strides, pad = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    y, y_ref = both("conv2d_forward", x, k, b, strides, pad)
    assert_close(y, y_ref, dtype)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_close(*both("conv2d_backward_data", dy, k, x.shape, strides, pad), dtype)
    assert_close(*both("conv2d_backward_weights", dy, x, k.shape, strides, pad), dtype)


@pytest.mark.parametrize("f", [1, 4, 5])  # both sides of DIRECT_MAX_FILTERS
def test_direct_and_gemm_convolutions_agree_at_the_switch(f, rng):
    x = rng.standard_normal((2, 9, 7, 6))
    k = rng.standard_normal((3, 5, 6, f))
    y, y_ref = both("conv2d_forward", x, k, None, (2, 1), "same")
    assert_close(y, y_ref, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 7), (3, 5, 7, 2), (13,)])
def test_elementwise_kernels(shape, dtype, rng):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    for slope in (0.0, 0.3):
        y, y_ref = both("leaky_relu_forward", x, slope)
        assert_close(y, y_ref, dtype)
        assert_close(*both("leaky_relu_backward", dy, y_ref[1], slope), dtype)
    for name in ("tanh", "sigmoid"):  # forwards stay NumPy's (faster)
        y_ref = ops.OPS[f"{name}_forward"]["numpy"](x)
        assert_close(*both(f"{name}_backward", dy, y_ref), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (3, 5, 7, 9), (1, 2, 3, 4)])
def test_batchnorm_kernels(shape, dtype, rng):
    x = (5 * rng.standard_normal(shape) + 12).astype(dtype)
    c = shape[-1]
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    out, ref = both("batchnorm_forward_train", x, gamma, beta, 1e-3)
    assert_close(out, ref, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    assert_close(*both("batchnorm_backward_train", dy, ref[1], ref[2], gamma), dtype)
    mm, mv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    out, ref = both("batchnorm_forward_infer", x, gamma, beta, mm, mv, 1e-3)
    assert_close(out, ref, dtype)
    assert_close(*both("batchnorm_backward_infer", dy, ref[1], ref[2]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool, strides, pad", [((2, 2), (2, 2), "valid"), ((3, 2), (1, 3), "same"),
                                                 ((3, 3), (2, 2), "same"), ((2, 3), (3, 1), "valid")])
def test_pooling_kernels(pool, strides, pad, dtype, rng):
    x = rng.standard_normal((2, 7, 9, 3)).astype(dtype)
    x[0, 0, :2, 0] = 1.5  # a tie: the first maximum wins on both backends
    (y, arg), (y_ref, arg_ref) = both("maxpool_forward", x, pool, strides, pad)
    assert_close(y, y_ref, dtype)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_close(*both("maxpool_backward", dy, arg_ref, x.shape, pool, strides, pad), dtype)
    for size in ((2, 2), (1, 3), (3, 2)):
        up, up_ref = both("upsample_nearest_forward", x, size)
        assert_close(up, up_ref, dtype)
        d = rng.standard_normal(up_ref.shape).astype(dtype)
        assert_close(*both("upsample_nearest_backward", d, size), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernels_drop_the_same_elements(dtype, rng):
    x = rng.standard_normal((3, 5, 7)).astype(dtype)
    got = ops.OPS["dropout_forward"]["numba"](x, 0.4, np.random.default_rng(5))
    want = ops.OPS["dropout_forward"]["numpy"](x, 0.4, np.random.default_rng(5))
    assert_close(got, want, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    assert_close(*both("dropout_backward", dy, want[1], want[2]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_kernels(dtype, rng):
    p = rng.uniform(0, 1, (7, 1)).astype(dtype)
    p[0, 0], p[1, 0] = 0.0, 1.0  # clipped: zero gradient on both backends
    t = rng.uniform(0, 1, (7, 1)).astype(dtype)
    (loss, pc), (loss_ref, pc_ref) = both("bce_forward", p, t)
    assert_close((loss, pc), (loss_ref, pc_ref), dtype)
    assert_close(*both("bce_backward", p, pc_ref, t), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, extra", [
    ("adam_update", (1e-3, 0.9, 0.999, 1e-7, 3)),
    ("sgd_update", (1e-2, 0.9, True)),
    ("sgd_update", (1e-2, 0.9, False)),
    ("sgd_update", (1e-2, 0.0, False)),
    ("rmsprop_update", (1e-3, 0.9, 1e-7)),
])
def test_optimizer_kernels_update_in_place(name, extra, dtype, rng):
    shape = (5, 3, 7)
    param, grad = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    slots = {"adam_update": 2, "rmsprop_update": 1}.get(name, 1)
    states = [np.abs(rng.standard_normal(shape)).astype(dtype) for _ in range(slots)]
    if name == "sgd_update" and extra[1] == 0:
        states = [None]
    runs = []
    for backend in ("numba", "numpy"):
        p = param.copy()
        s = [None if a is None else a.copy() for a in states]
        ops.OPS[name][backend](p, grad, *s, *extra)
        runs.append((p, *[a for a in s if a is not None]))
    assert_close(runs[0], runs[1], dtype)
    assert not np.array_equal(runs[0][0], param)


def _first_losses(name, dtype, iterations=3):
    small = name == "cifar_frog"  # its G is 6.3 M parameters of 32x32 convolutions: keep it short
    losses = {}
    for backend in ("numpy", "numba"):
        scratchgan.set_backend(backend)
        g, d, recipe = zoo.build(name, seed=4)
        g.astype(dtype), d.astype(dtype)
        recipe.override(batch_size=2 if small else 6)
        lo, hi = recipe.data_range
        data = np.random.default_rng(0).uniform(lo, hi, (24, *recipe.image_shape)).astype(dtype)
        trainer = GANTrainer(g, d, recipe, data, seed=4)
        losses[backend] = np.array([trainer.step() for _ in range(2 if small else iterations)])
    return losses["numba"], losses["numpy"]


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_models_train_alike_on_both_backends(name):
    """Same seed, same data: the first iterations' losses agree, in float64 to rounding."""
    got, want = _first_losses(name, np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_models_train_alike_in_float32(name):
    """In float32 too. cifar_frog only for its first iteration: RMSprop's first step moves
    every weight by about lr * sqrt(10) * sign(g) whatever |g| is, so a gradient that is
    zero up to rounding gets a full step whose sign is the rounding's (float64 agrees)."""
    got, want = _first_losses(name, np.float32)
    if name == "cifar_frog":
        got, want = got[:1], want[:1]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_every_op_has_a_numba_kernel_or_a_reason_not_to():
    from scratchgan.kernels.numba import NUMPY_IS_FASTER

    scratchgan.set_backend("numba")
    assert scratchgan.get_backend() == "numba"
    missing = sorted(name for name, impls in ops.OPS.items() if "numba" not in impls)
    assert missing == sorted(NUMPY_IS_FASTER)
