"""The vectorised NumPy ops against naive loops written from the formulas (random odd shapes)."""
import itertools

import numpy as np
import pytest

from scratchgan import ops
from scratchgan import layers as L
from scratchgan.ops.geometry import window
from scratchgan.reference import naive

CONV_GRID = list(itertools.product([1, 2, 3], ["valid", "same"], [(1, 3), (2, 2), (4, 5)], [1, 2]))


@pytest.mark.parametrize("stride,padding,kernel,batch", CONV_GRID)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_forward_matches_loops(rng, stride, padding, kernel, batch, dtype):
    x = rng.standard_normal((batch, 7, 6, 3)).astype(dtype)
    k = rng.standard_normal((*kernel, 3, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    y = ops.conv2d_forward(x, k, b, window((7, 6), kernel, stride, padding))
    assert y.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, naive.conv2d(x, k, b, (stride, stride), padding), rtol=tol, atol=tol)


@pytest.mark.parametrize("stride,padding,kernel,batch", CONV_GRID)
def test_conv2d_transpose_forward_matches_scatter_loops(rng, stride, padding, kernel, batch):
    x = rng.standard_normal((batch, 3, 4, 3))
    k = rng.standard_normal((*kernel, 2, 3))
    b = rng.standard_normal(2)
    layer = L.Conv2DTranspose(2, kernel, strides=stride, padding=padding)
    layer.build((None, 3, 4, 3))
    layer.params["kernel"], layer.params["bias"] = k, b
    y = layer.forward(x)
    np.testing.assert_allclose(y, naive.conv2d_transpose(x, k, b, (stride, stride), padding), atol=1e-12)


@pytest.mark.parametrize("stride,padding", list(itertools.product([1, 2, 3], ["valid", "same"])))
def test_conv_backward_data_is_the_adjoint_of_forward(rng, stride, padding):
    """<conv(x), dy> == <x, conv_backward_data(dy)> for every x, dy: the definition of dx."""
    x = rng.standard_normal((2, 9, 8, 3))
    k = rng.standard_normal((3, 4, 3, 5))
    g = window((9, 8), (3, 4), stride, padding)
    y = ops.conv2d_forward(x, k, None, g)
    dy = rng.standard_normal(y.shape)
    dx = ops.conv2d_backward_data(dy, k, g)
    assert np.sum(y * dy) == pytest.approx(np.sum(x * dx), rel=1e-12)
    dk = ops.conv2d_backward_weights(dy, x, g)
    assert np.sum(y * dy) == pytest.approx(np.sum(k * dk), rel=1e-12)


@pytest.mark.parametrize("pool,stride,padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "valid"), (3, 3, "same")])
def test_maxpool_matches_loops(rng, pool, stride, padding):
    x = rng.standard_normal((2, 7, 9, 3))
    s = stride or pool
    y, argmax = ops.maxpool_forward(x, window((7, 9), pool, s, padding))
    np.testing.assert_array_equal(y, naive.maxpool(x, (pool, pool), (s, s), padding))
    assert argmax.dtype == np.int8


def test_batchnorm_matches_loops(rng):
    x = 3 * rng.standard_normal((3, 5, 4, 2)) + 7
    gamma, beta = rng.uniform(0.5, 2, 2), rng.standard_normal(2)
    y = ops.batchnorm_forward_train(x, gamma, beta, 1e-3)[0]
    np.testing.assert_allclose(y, naive.batchnorm_train(x, gamma, beta, 1e-3), atol=1e-10)


@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 2)])
def test_upsampling_matches_loops(rng, size):
    x = rng.standard_normal((2, 3, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(ops.upsample_nearest_forward(x, size), naive.upsample_nearest(x, size))
