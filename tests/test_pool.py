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


def test_an_unused_buffer_serves_another_shape_and_dtype_that_fits_it():
    a = pool.empty((512, 1024), np.float32)  # 2 MB
    address = a.ctypes.data
    del a
    b = pool.empty((1000, 200), np.float64)  # 1.6 MB: fits, and is at least half the buffer
    assert b.ctypes.data == address and b.shape == (1000, 200) and b.dtype == np.float64
    assert b.flags.c_contiguous and b.flags.writeable and b.flags.aligned
    b[:] = 3.0
    assert (b == 3.0).all() and pool.held_bytes() == 2 << 20
    c = pool.empty((1000, 200), np.float64)  # b is alive: another buffer
    assert not np.shares_memory(b, c)


def test_the_smallest_fitting_buffer_is_taken_and_a_much_larger_one_is_left_alone():
    big = pool.empty((4 << 20,), np.uint8)
    small = pool.empty((2 << 20,), np.uint8)
    addresses = big.ctypes.data, small.ctypes.data
    del big, small
    middle = pool.empty((3 << 17,), np.float32)  # 1.5 MB: the 2 MB buffer, the best fit
    assert middle.ctypes.data == addresses[1]
    held = pool.held_bytes()
    tiny = pool.empty((1 << 20,), np.uint8)  # 1 MB: the 2 MB buffer is in use, the 4 MB one too large
    assert tiny.ctypes.data not in addresses and pool.held_bytes() == held + (1 << 20)
    assert pool.empty((3 << 20,), np.uint8).ctypes.data == addresses[0]


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
