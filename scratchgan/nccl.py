"""GPU-to-GPU gradient sums for data-parallel training on the cupy backend, with NCCL.

Under MPI on the cupy backend each rank first takes its own GPU: the ranks on one machine
(an MPI shared-memory communicator) take GPUs 0, 1, 2... in local-rank order. Then,
when CuPy has NCCL (``cupy.cuda.nccl``) and every local rank has a GPU of its own,
rank 0 creates an NCCL id, MPI broadcasts it, and every rank joins one NCCL
communicator. A model's gradients are then packed into one flat device buffer and summed
in place by ``ncclAllReduce`` on the current CUDA stream: they never visit the host.
Otherwise (no NCCL in this CuPy, or more ranks than GPUs on a machine, which NCCL
refuses) gradients go through the host and MPI, as on the CPU backends, and the trainer
says so. Batch norm's few statistics always go through MPI.

What has been tested without GPUs: the choice of device, the packing and the calls made
to NCCL (with stand-ins for CuPy and NCCL). The NCCL path itself needs a machine with
several GPUs and has not run on one.
"""
from __future__ import annotations

#: NumPy dtype name -> the name of NCCL's data type constant in cupy.cuda.nccl
NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}


class NcclAllreduce:
    """Sums a flat device array over all ranks in place: ``allreduce(flat)``."""

    def __init__(self, world, nccl, cupy):
        self.nccl, self.cupy = nccl, cupy
        unique_id = world.broadcast(nccl.get_unique_id() if world.is_root else None)
        self.comm = nccl.NcclCommunicator(world.size, unique_id, world.rank)

    def allreduce(self, flat) -> None:
        if flat.dtype.name not in NCCL_TYPES:
            raise TypeError(f"NCCL sums float16, float32 or float64 gradients, not {flat.dtype.name}")
        self.comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, getattr(self.nccl, NCCL_TYPES[flat.dtype.name]),
                            self.nccl.NCCL_SUM, self.cupy.cuda.get_current_stream().ptr)


def local_rank_and_size(world) -> tuple[int, int]:
    """This rank's index among the ranks on its machine, and how many there are."""
    if world.comm is None:
        return 0, 1
    from mpi4py import MPI

    local = world.comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return local.Get_rank(), local.Get_size()
    finally:
        local.Free()


def attach_gpus(world, cupy=None, nccl=None, local=None) -> str:
    """Give this rank its GPU and, where possible, an NCCL communicator (``world.device_sum``);
    returns a sentence saying which path gradients take. ``cupy``, ``nccl`` and ``local``
    (local rank, local size) are for tests."""
    if cupy is None:
        import cupy
    local_rank, local_size = local if local is not None else local_rank_and_size(world)
    devices = cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(local_rank % devices).use()
    if local_size > devices:
        return (f"{local_size} ranks share {devices} GPU(s) on this machine: gradients are summed through the host "
                f"with MPI (NCCL needs a GPU per rank)")
    if nccl is None:
        try:
            from cupy.cuda import nccl
        except ImportError:
            nccl = None
    if nccl is None or not getattr(nccl, "available", True):
        return "this CuPy has no NCCL: gradients are summed through the host with MPI"
    world.device_sum = NcclAllreduce(world, nccl, cupy)
    return f"gradients are summed GPU to GPU with NCCL ({world.size} ranks)"
