"""The CUDA kernels of kernels/cuda, run on the CPU (tests/cuda_on_cpu/emulate.cpp compiles
them as C++ and calls each (block, thread) in turn), against the NumPy reference on odd
shapes, strides and paddings, in float32 and float64. This checks their arithmetic and
indexing without a GPU; races and speed wait for one. Without g++ the tests skip."""
import ctypes
import shutil
from pathlib import Path

import numpy as np
import pytest

from scratchgan import ops
from scratchgan.kernels.cuda import define_value
from scratchgan.ops.geometry import window as window_of

REDUCE_THREADS = define_value("batchnorm", "REDUCE_THREADS")

SOURCE = Path(__file__).parent / "cuda_on_cpu" / "emulate.cpp"
GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ is needed to run the CUDA kernels on the CPU")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(scope="module")
def emu(cuda_emulator):
    return cuda_emulator


class Geometry(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("N", "H", "W", "C", "kh", "kw", "sh", "sw", "top", "left", "Ho", "Wo")]


def call(emu, name, dtype, *args):
    """Call ``name`` in the precision of ``dtype``: arrays by pointer, T scalars as ``dtype``,
    Python ints as long long (wrap in ctypes.c_int for int parameters)."""
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    converted = []
    for a in args:
        if isinstance(a, np.ndarray):
            assert a.flags.c_contiguous
            converted.append(a.ctypes.data_as(ctypes.c_void_p))
        elif isinstance(a, float):
            converted.append(scalar(a))
        elif isinstance(a, int):
            converted.append(ctypes.c_longlong(a))
        else:
            converted.append(a)  # ctypes values and structures as they are
    getattr(emu, f"{name}_{'f' if dtype == np.float32 else 'd'}")(*converted)


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations(emu, rng, dtype):
    x, dy = random(rng, (3, 5, 7), dtype), random(rng, (3, 5, 7), dtype)
    n = x.size
    y, mask, dx = np.empty_like(x), np.empty(x.shape, np.uint8), np.empty_like(x)
    call(emu, "leaky_relu_forward", dtype, x, 0.2, n, y, mask)
    want_y, want_mask = ops.leaky_relu_forward.reference(x, 0.2)
    np.testing.assert_allclose(y, want_y, **TOL[dtype])
    np.testing.assert_array_equal(mask.astype(bool), want_mask)
    call(emu, "leaky_relu_backward", dtype, dy, mask, 0.2, n, dx)
    np.testing.assert_allclose(dx, ops.leaky_relu_backward.reference(dy, want_mask, 0.2), **TOL[dtype])
    big = (x * 50).astype(dtype)  # sigmoid far into both tails
    for name in ("tanh", "sigmoid"):
        call(emu, f"{name}_forward", dtype, big, n, y)
        want = getattr(ops, f"{name}_forward").reference(big)
        np.testing.assert_allclose(y, want, **TOL[dtype])
        call(emu, f"{name}_backward", dtype, dy, want, n, dx)
        np.testing.assert_allclose(dx, getattr(ops, f"{name}_backward").reference(dy, want), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_updates(emu, rng, dtype):
    shape, t = (5, 9), 3
    p, g = random(rng, shape, dtype), random(rng, shape, dtype)
    m, v = random(rng, shape, dtype) * 0.1, np.abs(random(rng, shape, dtype)) * 0.1
    want = [a.copy() for a in (p, m, v)]
    ops.adam_update.reference(*want[:1], g, *want[1:], 1e-3, 0.5, 0.999, 1e-7, t)
    alpha = 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.5**t)
    call(emu, "adam_update", dtype, p, g, m, v, np.array([alpha], dtype), 0.5, 0.999, 1e-7, p.size)  # alpha: a buffer
    for got, ref in zip((p, m, v), want):
        np.testing.assert_allclose(got, ref, **TOL[dtype])
    for nesterov in (False, True):
        p2, u = random(rng, shape, dtype), random(rng, shape, dtype)
        want_p, want_u = p2.copy(), u.copy()
        ops.sgd_update.reference(want_p, g, want_u, 1e-2, 0.9, nesterov)
        call(emu, "sgd_momentum_update", dtype, p2, g, u, 1e-2, 0.9, ctypes.c_int(nesterov), p2.size)
        np.testing.assert_allclose(p2, want_p, **TOL[dtype])
        np.testing.assert_allclose(u, want_u, **TOL[dtype])
    p3 = random(rng, shape, dtype)
    want_p = p3.copy()
    ops.sgd_update.reference(want_p, g, None, 1e-2, 0.0, False)
    call(emu, "sgd_update", dtype, p3, g, 1e-2, p3.size)
    np.testing.assert_allclose(p3, want_p, **TOL[dtype])
    want_p, want_v = p.copy(), v.copy()
    ops.rmsprop_update.reference(want_p, g, want_v, 8e-4, 0.9, 1e-7)
    call(emu, "rmsprop_update", dtype, p, g, v, np.array([8e-4], dtype), 0.9, 1e-7, p.size)
    np.testing.assert_allclose(p, want_p, **TOL[dtype])
    np.testing.assert_allclose(v, want_v, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy(emu, rng, dtype):
    p = rng.uniform(0, 1, (13, 1)).astype(dtype)
    p[:2] = [[0.0], [1.0]]  # clipped: no gradient
    t = rng.uniform(0, 1, (13, 1)).astype(dtype)
    term, pc, dp = np.empty_like(p), np.empty_like(p), np.empty_like(p)
    call(emu, "bce_forward_terms", dtype, p, t, 1e-7, p.size, term, pc)
    loss, want_pc = ops.bce_forward.reference(p, t)
    assert term.mean(dtype=np.float64) == pytest.approx(loss, rel=1e-5 if dtype == np.float32 else 1e-12)
    call(emu, "bce_backward", dtype, p, pc, t, 1e-7, p.size, dp)
    np.testing.assert_allclose(dp, ops.bce_backward.reference(p, want_pc, t), **TOL[dtype])
    assert dp[0, 0] == 0 and dp[1, 0] == 0
    z = (random(rng, (13, 1), dtype) * 30).astype(dtype)
    sig, dz = np.empty_like(z), np.empty_like(z)
    call(emu, "bce_logits_forward_terms", dtype, z, t, z.size, term, sig)
    loss, want_sig = ops.bce_logits_forward.reference(z, t)
    assert term.mean(dtype=np.float64) == pytest.approx(loss, rel=1e-5 if dtype == np.float32 else 1e-12)
    call(emu, "bce_logits_backward", dtype, sig, t, z.size, dz)
    np.testing.assert_allclose(dz, ops.bce_logits_backward.reference(want_sig, t), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout(emu, rng, dtype):
    x, dy = random(rng, (7, 11), dtype), random(rng, (7, 11), dtype)
    u = rng.random(x.shape, dtype=np.float32)
    rate, scale = 0.4, dtype(1 / 0.6)
    y, keep, dx = np.empty_like(x), np.empty(x.shape, np.uint8), np.empty_like(x)
    call(emu, "dropout_forward", dtype, x, u, ctypes.c_float(rate), float(scale), x.size, y, keep)
    np.testing.assert_array_equal(keep, (u >= rate).astype(np.uint8))
    np.testing.assert_allclose(y, x * keep * scale, **TOL[dtype])
    call(emu, "dropout_backward", dtype, dy, keep, float(scale), x.size, dx)
    np.testing.assert_allclose(dx, ops.dropout_backward.reference(dy, keep, scale), **TOL[dtype])


def geometry(x_shape, window, strides, padding):
    """(the kernels' struct, the Window record the ops take) for this case."""
    g = window_of(x_shape[1:3], window, strides, padding)
    return Geometry(*x_shape, *window, *strides, g.top, g.left, g.ho, g.wo), g


CONV_CASES = [((2, 7, 9, 3), (3, 3), (1, 1), "same"), ((1, 8, 5, 2), (5, 5), (2, 2), "same"),
              ((3, 9, 11, 1), (4, 2), (3, 2), "valid"), ((2, 6, 6, 5), (2, 3), (2, 1), "same"),
              ((1, 5, 7, 4), (7, 7), (1, 1), "same")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, window, strides, padding", CONV_CASES)
def test_convolution_through_im2col_and_col2im(emu, rng, dtype, x_shape, window, strides, padding):
    f = 3
    x, kernel = random(rng, x_shape, dtype), random(rng, (*window, x_shape[3], f), dtype)
    g, win = geometry(x_shape, window, strides, padding)
    ho, wo = win.ho, win.wo
    rows, row_length = x_shape[0] * ho * wo, window[0] * window[1] * x_shape[3]
    cols = np.empty((rows, row_length), dtype)
    call(emu, "im2col", dtype, x, g, cols)
    y = (cols @ kernel.reshape(row_length, f)).reshape(x_shape[0], ho, wo, f)  # the GEMM: cuBLAS on a GPU
    np.testing.assert_allclose(y, ops.conv2d_forward.reference(x, kernel, None, win), **TOL[dtype])
    dy = random(rng, (x_shape[0], ho, wo, f), dtype)
    dcols = np.ascontiguousarray(dy.reshape(rows, f) @ kernel.reshape(row_length, f).T)
    dx = np.empty_like(x)
    call(emu, "col2im", dtype, dcols, g, dx)
    want = ops.conv2d_backward_data.reference(dy, kernel, win)
    np.testing.assert_allclose(dx, want, **TOL[dtype])


POOL_CASES = [((2, 7, 9, 3), (2, 2), (2, 2), "valid"), ((1, 9, 8, 2), (3, 3), (2, 2), "same"),
              ((2, 5, 7, 1), (3, 2), (1, 1), "valid")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, pool, strides, padding", POOL_CASES)
def test_max_pooling(emu, rng, dtype, x_shape, pool, strides, padding):
    x = random(rng, x_shape, dtype)
    x[0, 0, :2, 0] = 1.5  # a tie: the first tap must win
    g, win = geometry(x_shape, pool, strides, padding)
    ho, wo = win.ho, win.wo
    y, argmax = np.empty((x_shape[0], ho, wo, x_shape[3]), dtype), np.empty((x_shape[0], ho, wo, x_shape[3]), np.int8)
    call(emu, "maxpool_forward", dtype, x, g, y, argmax)
    want_y, want_argmax = ops.maxpool_forward.reference(x, win)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(argmax, want_argmax)
    dy, dx = random(rng, y.shape, dtype), np.empty_like(x)
    call(emu, "maxpool_backward", dtype, dy, argmax, g, dx)
    np.testing.assert_allclose(dx, ops.maxpool_backward.reference(dy, want_argmax, win),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_upsampling(emu, rng, dtype):
    x, size = random(rng, (2, 3, 5, 3), dtype), (2, 3)
    y = np.empty((2, 6, 15, 3), dtype)
    dims = [ctypes.c_int(v) for v in (*x.shape, *size)]
    call(emu, "upsample_nearest_forward", dtype, x, *dims, y)
    np.testing.assert_array_equal(y, ops.upsample_nearest_forward.reference(x, size))
    dy, dx = random(rng, y.shape, dtype), np.empty_like(x)
    call(emu, "upsample_nearest_backward", dtype, dy, *dims, dx)
    np.testing.assert_allclose(dx, ops.upsample_nearest_backward.reference(dy, size), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3, 4, 7), (9, 5)])
def test_batch_norm(emu, rng, dtype, shape):
    x = (random(rng, shape, dtype) * 3 + 100).astype(dtype)  # a large mean: the shift must keep the variance
    c, m = shape[-1], x.size // shape[-1]
    gamma, beta = random(rng, c, dtype), random(rng, c, dtype)
    mean, var = np.empty(c, dtype), np.empty(c, dtype)
    call(emu, "channel_moments", dtype, x, m, ctypes.c_int(c), mean, var)
    want_y, want_xhat, want_inv, want_mean, want_var = ops.batchnorm_forward_train.reference(x, gamma, beta, 1e-3)
    np.testing.assert_allclose(mean, want_mean, **TOL[dtype])
    np.testing.assert_allclose(var, want_var, rtol=1e-4 if dtype == np.float32 else 1e-10)
    inv = (1 / np.sqrt(var + dtype(1e-3))).astype(dtype)
    y, xhat = np.empty_like(x), np.empty_like(x)
    call(emu, "batchnorm_apply", dtype, x, gamma, beta, mean, inv, x.size, ctypes.c_int(c), y, xhat)
    np.testing.assert_allclose(y, want_y, rtol=1e-3 if dtype == np.float32 else 1e-9, atol=1e-4 if dtype == np.float32 else 1e-10)
    dy = random(rng, shape, dtype)
    dbeta, dgamma, dx = np.empty(c, dtype), np.empty(c, dtype), np.empty_like(x)
    call(emu, "channel_grad_sums", dtype, dy, want_xhat, m, ctypes.c_int(c), dbeta, dgamma)
    want_dx, want_dgamma, want_dbeta = ops.batchnorm_backward_train.reference(dy, want_xhat, want_inv, gamma)
    np.testing.assert_allclose(dbeta, want_dbeta, **TOL[dtype])
    np.testing.assert_allclose(dgamma, want_dgamma, rtol=1e-4 if dtype == np.float32 else 1e-10)
    call(emu, "batchnorm_backward_apply", dtype, dy, want_xhat, gamma, want_inv, want_dbeta, want_dgamma, m, x.size,
         ctypes.c_int(c), dx)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [1, 2, 3, 96, 100, REDUCE_THREADS])
def test_block_reductions_with_real_threads(emu, rng, dtype, block):
    """The channel sums with a real thread per CUDA thread, meeting at __syncthreads: block_sum2
    is right for any block size up to REDUCE_THREADS, powers of two or not (96 threads gave a
    35% error before), and two calls in one kernel (moments, then grad sums) do not race."""
    x = (random(rng, (37, 3), dtype) * 3 + 100).astype(dtype)
    m, c = 37, 3
    mean, var = np.empty(c, dtype), np.empty(c, dtype)
    call(emu, "channel_moments_threads", dtype, x, m, ctypes.c_int(c), mean, var, ctypes.c_uint(block))
    np.testing.assert_allclose(mean, x.mean(axis=0), **TOL[dtype])
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-4 if dtype == np.float32 else 1e-10)
    dy, xhat = random(rng, (m, c), dtype), random(rng, (m, c), dtype)
    dbeta, dgamma = np.empty(c, dtype), np.empty(c, dtype)
    call(emu, "channel_grad_sums_threads", dtype, dy, xhat, m, ctypes.c_int(c), dbeta, dgamma, ctypes.c_uint(block))
    np.testing.assert_allclose(dbeta, dy.sum(axis=0), **TOL[dtype])
    np.testing.assert_allclose(dgamma, (dy * xhat).sum(axis=0), **TOL[dtype])


def test_a_block_larger_than_reduce_threads_is_refused_on_the_device(emu, rng):
    """One thread more than block_sum2's shared arrays hold: NaN, not a write past shared memory."""
    x = random(rng, (5, 2), np.float64)
    mean, var = np.zeros(2), np.zeros(2)
    call(emu, "channel_moments_threads", np.float64, x, 5, ctypes.c_int(2), mean, var, ctypes.c_uint(REDUCE_THREADS + 1))
    assert np.isnan(mean).all() and np.isnan(var).all()


def test_launch_and_kernels_share_one_reduce_threads(fake_cupy):
    """launch.py launches the reductions with the block size batchnorm.cu declares."""
    import scratchgan
    from scratchgan.kernels.cuda import launch

    scratchgan.set_backend("cupy")
    assert launch.REDUCE_THREADS == REDUCE_THREADS == 256
    with pytest.raises(KeyError, match="batchnorm.cu defines no integer BLOCK"):
        define_value("batchnorm", "BLOCK")
