"""The numba backend's array pool: recycles only arrays nothing else references."""
import numpy as np
import pytest

pool = pytest.importorskip("scratchgan.kernels.numba.pool")


@pytest.fixture(autouse=True)
def fresh_pool():
    pool.clear()
    yield
    pool.clear()


def test_an_array_in_use_is_never_handed_out_again():
    shape = (1 << 18, 2)  # 2 MB of float32: pooled
    a = pool.empty(shape, np.float32)
    a[:] = 1
    b = pool.empty(shape, np.float32)
    assert b is not a and not np.shares_memory(a, b)
    view = a[::2]
    del a
    c = pool.empty(shape, np.float32)  # a lives on through its view
    assert not np.shares_memory(c, view)
    assert (view == 1).all()


def test_an_unused_array_is_recycled():
    shape = (1 << 19,)
    a = pool.empty(shape, np.float32)
    address = a.ctypes.data
    del a
    again = pool.empty(shape, np.float32)
    assert again.ctypes.data == address
    assert pool.empty(shape, np.float64).ctypes.data != address  # another dtype: another array


def test_small_arrays_are_not_pooled_and_the_limit_holds(monkeypatch):
    pool.empty((10,), np.float32)
    assert pool.held_bytes() == 0
    monkeypatch.setattr(pool, "LIMIT_BYTES", 3 << 20)
    keep = [pool.empty((1 << 18,), np.float32) for _ in range(5)]  # 1 MB each, all in use
    assert len({a.ctypes.data for a in keep}) == 5
    assert pool.held_bytes() == 3 << 20


def test_kernels_give_the_same_results_when_their_outputs_are_recycled():
    from scratchgan.kernels.numba import activations

    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((512, 1024)).astype(np.float32)
    x2 = rng.standard_normal((512, 1024)).astype(np.float32)
    y1, _ = activations.leaky_relu_forward(x1, 0.2)
    first = y1.copy()
    y2, _ = activations.leaky_relu_forward(x2, 0.2)  # y1 is alive: y2 must be another array
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, first)
    del y1
    y3, _ = activations.leaky_relu_forward(x1, 0.2)  # may reuse y1's memory
    np.testing.assert_array_equal(y3, first)
