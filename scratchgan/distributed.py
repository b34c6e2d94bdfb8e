"""Data-parallel training over MPI ranks: ``mpiexec -n N python3 -m scratchgan train ...``.

Every rank holds the whole model and trains on its share of every batch. With a global
batch of B rows split into contiguous shares (rank r keeps rows [lo_r, hi_r), n_r of
them, sizes differing by at most one), a loss that is a mean over the batch splits as

    L = (1/B) sum_i l_i = sum_r (n_r / B) L_r        L_r: rank r's mean over its n_r rows
    dL/dθ = sum_r (n_r / B) dL_r/dθ

so each rank scales its loss and gradient by n_r / B (its :class:`Share`, from
``world.split(B)``) and one ``Allreduce(SUM)`` over all of a model's gradients, packed
into one flat buffer, gives every rank the gradient of the whole batch
(:class:`DataParallel` wraps the optimizer and makes that call before each update);
every rank then takes the same optimizer step and the weights stay identical. Every
random draw (z, which real images, label noise, dropout masks) is made for all B rows
from the same seed on every rank, and each rank keeps its rows, so N ranks train as one
process does, up to the order of floating-point sums.

BatchNormalization built with ``sync=world`` (``zoo.build(..., world=world)``) sums its
batch statistics over the ranks (scratchgan.layers.normalization, derived in
docs/distributed.md), so it normalises by the whole batch's mean and variance. A folder
of pictures is decoded a share per rank and gathered (:meth:`World.spread`).
Not synchronised: dropout masks drawn on a GPU (the cupy backend) are drawn per rank.

mpi4py is imported only when the process was started by an MPI launcher with more than
one rank (``pip install 'scratchgan[mpi]'`` brings mpi4py and the mpich wheel's
``mpiexec``); a plain ``python3 -m scratchgan train`` never imports it.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time

import numpy as np

from .errors import ScratchganError
from .xp import array_module, is_device_array, like, to_host

#: what MPI launchers set to the number of ranks (MPICH/Hydra and Intel MPI, Open MPI, MVAPICH)
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class DistributedError(ScratchganError, RuntimeError):
    """Ranks that cannot train together (different code, recipe or data; an unsupported layer)."""


class RanksDisagree(DistributedError):
    """Raised on every rank at once (all see the same gathered values): no rank is left
    waiting in a collective, so each one exits on its own and none needs MPI's Abort, whose
    teardown could cut the launcher's forwarding of the ranks' messages."""


class World:
    """This process's place among the ranks: ``rank``, ``size`` and the communicator."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        # what this rank's Allreduce calls have cost so far (read by ``scratchgan bench --ranks``):
        # the seconds include waiting for slower ranks, which is what a collective costs a step
        self.collective_calls, self.collective_bytes, self.collective_seconds = 0, 0, 0.0
        self.device_sum = None  # on GPUs: sums a flat device array over the ranks (scratchgan.nccl)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def rows(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """[lo, hi): rank's contiguous share of n rows (the first n % size ranks get one more)."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(n, self.size)
        lo = rank * base + min(rank, extra)
        return lo, lo + base + (1 if rank < extra else 0)

    def allreduce_sum(self, buffer: np.ndarray) -> np.ndarray:
        """Sum ``buffer`` over all ranks, in place (a host array of float32 or float64)."""
        if self.comm is not None:
            from mpi4py import MPI

            start = time.perf_counter()
            self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            self.collective_seconds += time.perf_counter() - start
            self.collective_calls += 1
            self.collective_bytes += buffer.nbytes
        return buffer

    def split(self, *halves: int) -> "Share":
        """This rank's share of a global batch made of ``halves`` (e.g. n real then n fake
        rows): each half is split alike by :meth:`rows`. One process gets the whole batch,
        with weight 1 and no index array."""
        return Share.of(self, halves)

    def sum_gradients(self, grads: dict) -> None:
        """Every gradient in ``grads`` replaced by its sum over the ranks, in place: one
        Allreduce of one flat buffer of the gradients' own dtype (float32 models send 4
        bytes per parameter). GPU gradients are summed on the GPUs when ``device_sum`` is
        set (NCCL), else through the host. One process: nothing to do."""
        if self.comm is None:
            return
        grads = [g for g in grads.values() if g is not None]
        if not grads:
            return
        if self.device_sum is not None and is_device_array(grads[0]):
            flat = array_module(grads[0]).concatenate([g.ravel() for g in grads])
            start = time.perf_counter()  # the time to queue the sum: NCCL runs on the GPU's stream
            self.device_sum.allreduce(flat)
            self.collective_seconds += time.perf_counter() - start
            self.collective_calls += 1
            self.collective_bytes += flat.nbytes
        else:
            flat = self.allreduce_sum(np.concatenate([to_host(g).ravel() for g in grads]))
        offset = 0
        for grad in grads:  # written back into the layers' own gradient arrays
            grad[...] = like(flat[offset:offset + grad.size].reshape(grad.shape), grad)
            offset += grad.size

    def spread(self, work, items):
        """``work(items) -> (block, notes)`` done a contiguous share of ``items`` per rank, the
        blocks (arrays (n, ...), one trailing shape and dtype) and the notes (lists) gathered
        in rank order on every rank: what one process would get, in 1/size of the time.
        A folder of pictures is decoded this way."""
        if self.comm is None:
            return work(items)
        lo, hi = self.rows(len(items))
        block, notes = work(items[lo:hi])
        return self.allgather_rows(block), [note for share in self.allgather(notes) for note in share]

    def allgather(self, value) -> list:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        return [value] if self.comm is None else self.comm.allgather(value)

    def allgather_rows(self, block: np.ndarray) -> np.ndarray:
        """Every rank's rows stacked in rank order, on every rank: one Allgatherv of the raw
        bytes. ``block`` is (n_r, ...) with the same trailing shape and dtype on every rank."""
        if self.comm is None:
            return block
        block = np.ascontiguousarray(block)
        counts = self.comm.allgather(block.shape[0])
        row_bytes = block.dtype.itemsize * int(np.prod(block.shape[1:], dtype=np.int64))
        out = np.empty((sum(counts), *block.shape[1:]), block.dtype)
        sizes = [c * row_bytes for c in counts]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64).tolist()
        from mpi4py import MPI

        self.comm.Allgatherv(block.view(np.uint8).reshape(-1) if block.size else np.empty(0, np.uint8),
                             [out.view(np.uint8).reshape(-1), sizes, offsets, MPI.BYTE])
        return out

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (any picklable value)."""
        return value if self.comm is None else self.comm.bcast(value, root=0)

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (e.g. one rank was interrupted)."""
        return bool(flag) if self.comm is None else bool(self.allreduce_sum(np.array([float(bool(flag))]))[0])

    def agree(self, what: str, value: str) -> None:
        """Refuse to start unless every rank computed the same ``value`` (a digest)."""
        if self.comm is None:
            return
        values = self.comm.allgather(value)
        if len(set(values)) > 1:
            differing = [r for r, v in enumerate(values) if v != values[0]]
            raise RanksDisagree(f"the ranks disagree on {what} (ranks {differing} differ from rank 0): "
                                   f"start every rank with the same code, command line and data")

    def abort(self, code: int) -> None:
        """Stop every rank (a rank that fails must not leave the others waiting in a collective)."""
        if self.comm is not None:
            self.comm.Abort(code)


SINGLE = World()
_world: World | None = None


def launched_ranks() -> int:
    """How many ranks the MPI launcher started (1 when none did)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def world() -> World:
    """The ranks of this run: SINGLE unless launched by mpiexec with more than one rank."""
    global _world
    if _world is None:
        if launched_ranks() > 1:
            try:
                from mpi4py import MPI
            except ImportError:
                raise DistributedError("started by an MPI launcher with several ranks, but mpi4py is not "
                                       "installed: pip install 'scratchgan[mpi]'") from None
            _world = World(MPI.COMM_WORLD)
        else:
            _world = SINGLE
    return _world


#: what MPI launchers set to the number of ranks on this machine
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")


def oversubscription_warning() -> str | None:
    """A sentence when the ranks on this machine times NumPy's BLAS threads exceed its cores
    (measured here: 2 ranks x 2 threads on 2 cores ran 8x slower than 2 x 1), with the fix.
    Nothing is changed: thread counts are the user's to set."""
    local = next((int(os.environ[v]) for v in LOCAL_SIZE_VARIABLES if os.environ.get(v, "").isdigit()), 1)
    cores = os.cpu_count() or 1
    try:
        from threadpoolctl import threadpool_info

        threads = max((p.get("num_threads") or 1 for p in threadpool_info() if p.get("user_api") == "blas"), default=1)
    except ImportError:
        return None
    if local < 2 or local * threads <= cores:
        return None
    per_rank = max(1, cores // local)
    return (f"{local} ranks on this machine, each with {threads} BLAS threads, on {cores} cores: they will fight for "
            f"the cores. Start them with OPENBLAS_NUM_THREADS={per_rank} OMP_NUM_THREADS={per_rank} "
            f"NUMBA_NUM_THREADS={per_rank} (e.g. mpiexec -n {local} env OPENBLAS_NUM_THREADS={per_rank} ...)")


def digest(*parts) -> str:
    """A short hash of the given values (arrays by their bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.shape, part.dtype)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:16]


def code_digest() -> str:
    """A hash of the package's own source files (the code every rank runs)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent
    files = sorted(root.rglob("*.py"))
    return digest(*[f.read_bytes() for f in files])


class Share:
    """This rank's rows of a global batch (made by :meth:`World.split`).

    ``total`` rows in the batch, ``count`` of them this rank's, ``weight = count / total``.
    ``rows`` picks them: None for the whole batch (one process), a slice for a batch of one
    half, an index array for several halves (this rank's real rows, then its fake ones).
    A loss that is a mean over the batch splits as ``L = sum_r weight_r * L_r``, so each
    rank scales its loss and its gradient by its weight and the sums over the ranks are
    the whole batch's."""

    def __init__(self, total: int, count: int, rows=None):
        self.total, self.count, self.rows = total, count, rows

    @classmethod
    def of(cls, world: "World", halves) -> "Share":
        total = sum(halves)
        if world.size == 1:
            return cls(total, total)
        if len(halves) == 1:
            lo, hi = world.rows(total)
            return cls(total, hi - lo, slice(lo, hi))
        rows, start = [], 0
        for n in halves:
            lo, hi = world.rows(n)
            rows.append(np.arange(start + lo, start + hi))
            start += n
        rows = np.concatenate(rows)
        return cls(total, len(rows), rows)

    @property
    def weight(self) -> float:
        return self.count / self.total

    def take(self, array):
        """This rank's rows of ``array`` (which holds all ``total`` rows)."""
        if self.rows is None:
            return array
        return array[self.rows if isinstance(self.rows, slice) else like(self.rows, array)]

    def scale(self, value):
        """``value`` (a loss or its gradient) times this rank's weight: unchanged for the whole batch."""
        if self.rows is None:
            return value
        return value * value.dtype.type(self.weight)

    def generator(self, rng):
        """A generator that draws for every row of the batch and returns this rank's rows
        (``rng`` itself for the whole batch): Dropout draws its masks through it."""
        return rng if self.rows is None else ShardedGenerator(rng, self.total, self.rows)


class DataParallel:
    """An optimizer of data-parallel training: ``step`` sums the gradients over the ranks
    (one Allreduce) and then updates, so every rank takes the same step and the weights
    stay identical. With one process it is the optimizer itself. Everything else (state,
    settings, state_dict) is the wrapped optimizer's."""

    def __init__(self, optimizer, world: "World"):
        self.optimizer, self.world = optimizer, world

    def step(self, params: dict, grads: dict) -> None:
        self.world.sum_gradients(grads)
        self.optimizer.step(params, grads)

    def __getattr__(self, name):
        return getattr(self.optimizer, name)


class ShardedGenerator:
    """Stands in for a layer's NumPy Generator under MPI: draws for all rows of the global
    batch (as one process would) and keeps this rank's ``rows``."""

    def __init__(self, rng, global_rows: int, rows: np.ndarray):
        self.rng, self.global_rows, self.rows = rng, global_rows, rows

    def random(self, size=None, dtype=np.float64, out=None):
        shape = tuple(out.shape if size is None else np.atleast_1d(size))
        full = self.rng.random((self.global_rows, *shape[1:]), dtype=dtype)
        mine = full[self.rows]
        if out is None:
            return mine
        out[...] = mine
        return out

    def integers(self, *args, **kwargs):
        return self.rng.integers(*args, **kwargs)


def report_and_abort(world_: World, err: BaseException, code: int = 1) -> None:
    """Print a rank's failure and stop every rank."""
    print(f"scratchgan: rank {world_.rank} of {world_.size} failed: {err}", file=sys.stderr, flush=True)
    world_.abort(code)
