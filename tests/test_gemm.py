"""The Numba backend's GEMMs (kernels/numba/gemm.py): split across threads, BLAS held to one
thread while they run, the same values as np.matmul on every layout the kernels use."""
import numpy as np
import pytest

gemm = pytest.importorskip("scratchgan.kernels.numba.gemm")
threads = pytest.importorskip("scratchgan.kernels.numba.threads")


@pytest.fixture
def split_everything(monkeypatch):
    """Split mode on, every call split, into 3 parts (uneven ones) whatever the machine has."""
    monkeypatch.setitem(gemm._state, "split", True)
    monkeypatch.setattr(gemm, "SPLIT_MIN_FLOPS", 0)
    monkeypatch.setattr(gemm, "all_threads", lambda: 3)
    monkeypatch.setattr(threads, "_quiet", [True])


def _cases(rng, dtype):
    """(a, b, out) in the layouts the kernels pass: plain, transposed views, strided out blocks."""
    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    def empty(*shape):
        return np.full(shape, np.nan, dtype)

    tall, wide = (r(67, 13), r(13, 5)), (r(7, 11), r(11, 93))
    yield tall[0], tall[1], empty(67, 5)
    yield wide[0], wide[1], empty(7, 93)
    yield r(13, 67).T, tall[1], empty(5, 67).T  # transposed views in and out
    yield wide[0], r(93, 11).T, empty(7, 130)[:, 20:113]  # a column block of a wider array
    yield r(64, 11, 7), r(64, 7, 3), empty(64, 11, 3)
    yield r(5, 64, 9).transpose(1, 0, 2), r(64, 9, 4), empty(5, 64, 4).transpose(1, 0, 2)  # Winograd's views
    yield r(2, 4), r(4, 1), empty(2, 1)  # fewer rows than threads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_gemms_equal_numpys(split_everything, rng, dtype):
    for a, b, out in _cases(rng, dtype):
        want = np.matmul(a, b)
        got = gemm.matmul(a, b, out)
        assert got is out
        np.testing.assert_allclose(out, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_blas_is_held_to_one_thread_during_a_split_gemm_and_restored_after(split_everything, rng, monkeypatch):
    libraries = gemm._blas_libraries()
    if not libraries or libraries[0].num_threads < 2:
        pytest.skip("BLAS runs one thread here: nothing to hold")
    before = [lib.num_threads for lib in libraries]
    seen = []

    def spy(a, b, out):
        seen.append(libraries[0].num_threads)
        np.matmul(a, b, out=out)

    monkeypatch.setattr(gemm, "_matmul_into", spy)
    a, b = rng.standard_normal((30, 8)), rng.standard_normal((8, 4))
    gemm.matmul(a, b, np.empty((30, 4)))
    assert seen == [1, 1] and [lib.num_threads for lib in libraries] == before
    with pytest.raises(ValueError):  # a helper's error reaches the caller; the count is restored
        gemm.matmul(a, b, np.empty((30, 5)))
    assert [lib.num_threads for lib in libraries] == before


def test_the_first_large_gemm_switches_the_process_to_split_gemms_and_parallel_kernels(monkeypatch, rng):
    monkeypatch.setitem(gemm._state, "split", False)
    monkeypatch.setattr(threads, "_quiet", [False])
    monkeypatch.setattr(gemm, "SWITCH_FLOPS", 2 * 40 * 30 * 20)
    calls = []
    monkeypatch.setattr(gemm, "one_blas_thread", _recording(gemm.one_blas_thread, calls))
    a, b = rng.standard_normal((40, 30)), rng.standard_normal((30, 19))
    gemm.matmul(a, b, np.empty((40, 19)))  # one FLOP short of the switch: BLAS as NumPy runs it
    assert not gemm._state["split"] and calls == [] and not threads._quiet[0]
    b = rng.standard_normal((30, 20))
    out = gemm.matmul(a, b, np.empty((40, 20)))
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
    assert gemm._state["split"] and calls == [1] and threads._quiet[0]
    gemm.matmul(a[:2], b, np.empty((2, 20)))  # from now on every GEMM holds BLAS to one thread
    assert calls == [1, 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_is_numpys_at_where_matmul_and_the_pool_would_leave_the_gemm_as_it_is(monkeypatch, rng, dtype):
    """gemm.product: a small GEMM of a process that does not split (the mlp's) is NumPy's own
    ``@``; a large one (which starts the split), an output the pool keeps, and every GEMM
    once the process splits go through matmul. The same values either way."""
    pool = pytest.importorskip("scratchgan.kernels.numba.pool")
    monkeypatch.setitem(gemm._state, "split", False)
    monkeypatch.setattr(threads, "_quiet", [False])
    routed = []
    matmul = gemm.matmul
    monkeypatch.setattr(gemm, "matmul", lambda a, b, out: routed.append(a.shape) or matmul(a, b, out))
    x, k, dy = rng.standard_normal((128, 128)).astype(dtype), rng.standard_normal((128, 1)).astype(dtype), \
        rng.standard_normal((128, 8)).astype(dtype)
    np.testing.assert_array_equal(gemm.product(x, k), x @ k)
    np.testing.assert_array_equal(gemm.product(x.T, dy), x.T @ dy)  # a transposed view
    assert routed == []
    rows = pool.MIN_BYTES // np.dtype(dtype).itemsize // 8 + 1  # an output the pool keeps
    tall = rng.standard_normal((rows, 4)).astype(dtype)
    np.testing.assert_allclose(gemm.product(tall, dy[:4]), tall @ dy[:4], rtol=1e-5)
    assert routed == [tall.shape] and not gemm._state["split"]
    monkeypatch.setattr(gemm, "SWITCH_FLOPS", 2 * 128 * 128 * 8)
    np.testing.assert_allclose(gemm.product(x, dy), x @ dy, rtol=1e-5)  # large enough to switch
    assert routed[-1] == (128, 128) and gemm._state["split"]
    gemm.product(x, k)  # from now on every GEMM, however small
    assert routed == [tall.shape, (128, 128), (128, 128)]


def _recording(context, calls):
    def wrapped():
        calls.append(1)
        return context()
    return wrapped


def test_quiet_blas_lowers_the_parallel_threshold_unless_the_variable_sets_it(monkeypatch):
    import numba

    seen = []
    monkeypatch.setattr(numba, "set_num_threads", seen.append)
    monkeypatch.setattr(threads, "_all", 2)
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 1 << 22)
    monkeypatch.setattr(threads, "QUIET_PARALLEL_MIN_WORK", 1 << 16)
    for quiet, want in ((False, 1), (True, 2)):
        monkeypatch.setattr(threads, "_current", [None])
        monkeypatch.setattr(threads, "_quiet", [quiet])
        threads.threads_for(1 << 17)
        assert seen[-1] == want
    env = {"SCRATCHGAN_PARALLEL_MIN_WORK": "1000"}
    import subprocess
    import sys

    code = "from scratchgan.kernels.numba import threads as t; print(t.PARALLEL_MIN_WORK, t.QUIET_PARALLEL_MIN_WORK)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, **env}).stdout.split()
    assert out == ["1000", "1000"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in __import__("os").environ.items()
                              if k != "SCRATCHGAN_PARALLEL_MIN_WORK"}).stdout.split()
    assert out == [str(1 << 22), str(1 << 16)]


def test_a_forked_child_runs_split_gemms_on_threads_of_its_own(split_everything, rng):
    """A child forked after the parent's helper threads started must not hand work to them."""
    import multiprocessing

    gemm.all_threads = lambda: 2  # (the fixture restores it) one helper thread, idle after this:
    a, b = rng.standard_normal((60, 9)), rng.standard_normal((9, 4))
    gemm.matmul(a, b, np.empty((60, 4)))  # an inherited pool would count it as free and start none
    assert gemm._state["pool"] is not None
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as child:
        got = child.apply_async(_split_in_child, (a, b)).get(timeout=60)  # a hang fails here
    np.testing.assert_allclose(got, a @ b, rtol=1e-12)


def _split_in_child(a, b):
    gemm._state["split"] = True
    gemm.SPLIT_MIN_FLOPS = 0
    gemm.all_threads = lambda: 2
    return gemm.matmul(a, b, np.empty((a.shape[0], b.shape[1])))
