"""GPU gradient sums over NCCL, tested without GPUs: stand-ins for CuPy and cupy.cuda.nccl
record what scratchgan asks of them (the device each rank takes, the communicator, each
ncclAllReduce's buffer, count, type, operation and stream) and sum like two equal ranks.
What only several real GPUs can show (NCCL itself) is not tested here."""
import sys
import types

import numpy as np
import pytest

from scratchgan.distributed import World
from scratchgan.nccl import NcclAllreduce, attach_gpus
from test_distributed import FakeComm as RankAndSize


class DeviceArray(np.ndarray):
    """A NumPy array that scratchgan takes for a CuPy array, with CuPy's ``.data.ptr``."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])


DeviceArray.__module__ = "cupy._core.core"


class FakeComm(RankAndSize):
    def bcast(self, value, root=0):
        return value if self.rank == root else "the root's id"

    def Allreduce(self, *args, **kwargs):
        raise AssertionError("a GPU gradient went through the host")


class FakeNccl:
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 6, 7, 8, 0

    def __init__(self, ranks_alike=2):
        self.calls, self.communicators, self.ranks_alike = [], [], ranks_alike

    def get_unique_id(self):
        return "the root's id"

    def NcclCommunicator(self, size, unique_id, rank):
        self.communicators.append((size, unique_id, rank))
        nccl = self

        class Communicator:
            def allReduce(self, send, recv, count, dtype, op, stream):
                nccl.calls.append((send, recv, count, dtype, op, stream))
                buffer = np.ctypeslib.as_array(  # every rank holds the same gradients: the sum is a multiple
                    (np.ctypeslib.ctypes.c_char * (count * nccl.itemsize)).from_address(recv)).view(nccl.dtype)
                buffer *= nccl.ranks_alike
        return Communicator()


def stand_in_cupy(devices):
    used = []
    cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: devices),
        Device=lambda i: types.SimpleNamespace(use=lambda: used.append(i)),
        get_current_stream=lambda: types.SimpleNamespace(ptr=1234))
    module = types.SimpleNamespace(cuda=cuda, concatenate=lambda arrays: np.concatenate(list(arrays)).view(DeviceArray),
                                   stack=lambda arrays: np.stack(arrays).view(DeviceArray),
                                   asarray=lambda a, dtype=None: np.asarray(a, dtype).view(DeviceArray),
                                   empty=lambda shape, dtype: np.empty(shape, dtype).view(DeviceArray))
    return module, used


def test_each_local_rank_takes_its_own_gpu_and_joins_one_nccl_communicator():
    cupy, used = stand_in_cupy(devices=4)
    nccl = FakeNccl()
    root, other = World(FakeComm(0, 2)), World(FakeComm(1, 2))
    assert "NCCL" in attach_gpus(root, cupy, nccl, local=(0, 2))
    assert "NCCL" in attach_gpus(other, cupy, nccl, local=(1, 2))
    assert used == [0, 1]
    assert nccl.communicators == [(2, "the root's id", 0), (2, "the root's id", 1)]
    assert isinstance(root.device_sum, NcclAllreduce)


def test_more_ranks_than_gpus_or_no_nccl_sum_through_the_host():
    cupy, used = stand_in_cupy(devices=2)
    world = World(FakeComm(2, 3))
    assert "through the host" in attach_gpus(world, cupy, FakeNccl(), local=(2, 3))
    assert used == [0] and world.device_sum is None  # 3 local ranks on 2 GPUs: NCCL would refuse
    unavailable = types.SimpleNamespace(available=False)
    assert "no NCCL" in attach_gpus(World(FakeComm(0, 2)), cupy, unavailable, local=(0, 2))


@pytest.mark.parametrize("dtype, nccl_type", [(np.float32, FakeNccl.NCCL_FLOAT32), (np.float64, FakeNccl.NCCL_FLOAT64)])
def test_gpu_gradients_are_summed_in_one_in_place_nccl_call_and_written_back(monkeypatch, dtype, nccl_type):
    cupy, _ = stand_in_cupy(devices=2)
    monkeypatch.setitem(sys.modules, "cupy", cupy)  # what array_module answers for a "device" array
    nccl = FakeNccl()
    nccl.dtype, nccl.itemsize = np.dtype(dtype), np.dtype(dtype).itemsize
    world = World(FakeComm(0, 2))
    attach_gpus(world, cupy, nccl, local=(0, 2))
    rng = np.random.default_rng(0)
    grads = {"w": rng.random((3, 5)).astype(dtype).view(DeviceArray), "b": rng.random(5).astype(dtype).view(DeviceArray),
             "frozen": None}
    before = {k: np.array(v) for k, v in grads.items() if v is not None}
    world.sum_gradients(grads)
    assert len(nccl.calls) == 1
    send, recv, count, sent_type, op, stream = nccl.calls[0]
    # the 20 gradient numbers, in one buffer and one call
    assert send == recv and count == 20 and sent_type == nccl_type and op == FakeNccl.NCCL_SUM and stream == 1234
    for key, value in before.items():  # two ranks alike: twice each gradient, written into its own array
        np.testing.assert_allclose(np.asarray(grads[key]), value * 2, rtol=1e-6)
        assert grads[key].dtype == dtype and isinstance(grads[key], DeviceArray)  # still on the GPU
    assert world.collective_calls == 1 and world.collective_bytes == 20 * np.dtype(dtype).itemsize


def test_nccl_refuses_a_type_it_cannot_sum():
    cupy, _ = stand_in_cupy(devices=1)
    summer = NcclAllreduce(World(FakeComm(0, 2)), FakeNccl(), cupy)
    with pytest.raises(TypeError, match="not int32"):
        summer.allreduce(np.zeros(3, np.int32).view(DeviceArray))
