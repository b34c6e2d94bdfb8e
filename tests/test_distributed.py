"""Data-parallel training over MPI: N ranks train as one process does.

The tests that start ranks need mpi4py and an ``mpiexec`` (``pip install '.[mpi]'``
brings both: the mpich wheel puts mpiexec beside the Python it installs into); they are
skipped, saying why, where these are missing."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchgan.distributed import DistributedError, ShardedGenerator, World

HERE = Path(__file__).parent
STEPS = HERE / "mpi" / "train_steps.py"


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install '.[mpi]')"
    return (found, None) if found else (None, "no mpiexec found (pip install '.[mpi]' brings MPICH's)")


MPIEXEC, WHY = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason=WHY or "")


class FakeComm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_a_failed_agreement_is_raised_on_every_rank_and_stops_none_by_abort(monkeypatch, capsys):
    """Every rank gathers the same digests, so every rank raises; each exits by itself (an
    MPI Abort here could cut the launcher off before it forwarded the message)."""
    import types

    from scratchgan import cli
    from scratchgan.distributed import RanksDisagree

    class Gathering(FakeComm):
        def allgather(self, value):
            return ["a", value]

        def Abort(self, code):
            raise AssertionError("no rank may abort on a failed agreement")

    with pytest.raises(RanksDisagree, match=r"the ranks disagree on the seed \(ranks \[1\] differ"):
        World(Gathering(1, 2)).agree("the seed", "b")
    World(Gathering(0, 2)).agree("the seed", "a")  # all alike: nothing raised
    monkeypatch.setitem(sys.modules, "mpi4py", types.ModuleType("mpi4py"))
    assert cli._raised_on_every_rank(RanksDisagree("x"))
    assert not cli._raised_on_every_rank(DistributedError("rank 0 could not start the run"))


@pytest.mark.parametrize("n, size", [(12, 2), (13, 2), (7, 3), (3, 3), (100, 7)])
def test_shares_cover_the_batch_once_and_differ_by_at_most_one(n, size):
    shares = [World(FakeComm(r, size)).rows(n) for r in range(size)]
    assert shares[0][0] == 0 and shares[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
    lengths = [hi - lo for lo, hi in shares]
    assert max(lengths) - min(lengths) <= 1


def test_a_sharded_generator_draws_the_global_batch_and_keeps_its_rows():
    rows = np.array([1, 2, 5])
    mine = ShardedGenerator(np.random.default_rng(4), 6, rows).random((3, 2), dtype=np.float32)
    np.testing.assert_array_equal(mine, np.random.default_rng(4).random((6, 2), dtype=np.float32)[rows])
    out = np.empty((3, 2), np.float32)
    ShardedGenerator(np.random.default_rng(4), 6, rows).random(dtype=np.float32, out=out)
    np.testing.assert_array_equal(out, mine)


def _run(ranks, *args, timeout=600):
    cmd = [sys.executable, *map(str, args)]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    one_thread = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent,
                          env={**os.environ, **one_thread,  # ranks share 2 cores: one thread each
                               "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])})


@needs_mpi
# 20 iterations of every model but cifar_frog, whose float64 iteration takes 3 s even at batch 3
# (60 GFLOP of 5x5 convolutions over 256 channels), so 4 of it (batch sizes odd or not divisible
# by 2 and 3: uneven shares)
@pytest.mark.parametrize("model, iterations, batch", [("mlp", 20, 13), ("dcgan", 20, 7), ("cifar_frog", 4, 3),
                                                      ("dcgan_bn", 20, 7), ("dcgan_upsample", 20, 5)])
def test_two_and_three_ranks_train_as_one_process_in_float64(tmp_path, model, iterations, batch):
    results = {}
    for ranks in (1, 2, 3):
        out = tmp_path / f"{ranks}.npz"
        done = _run(ranks, STEPS, model, iterations, "float64", batch, out)
        assert done.returncode == 0, done.stderr[-3000:]
        results[ranks] = np.load(out)
    one = results[1]
    for ranks in (2, 3):
        other = results[ranks]
        np.testing.assert_allclose(other["losses"], one["losses"], rtol=1e-9, atol=1e-12)
        for key in one.files:
            np.testing.assert_allclose(other[key], one[key], rtol=1e-9, atol=1e-12, err_msg=f"{ranks} ranks: {key}")


@needs_mpi
def test_two_ranks_train_as_one_process_in_float32(tmp_path):
    for ranks in (1, 2):
        done = _run(ranks, STEPS, "mlp", 20, "float32", 16, tmp_path / f"{ranks}.npz")
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = np.load(tmp_path / "1.npz"), np.load(tmp_path / "2.npz")
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4, atol=1e-5)


@needs_mpi
def test_the_command_line_under_mpiexec_writes_once_and_resumes_at_another_rank_count(tmp_path):
    train = ["-m", "scratchgan", "train", "--batch-size", "8", "--sample-interval", "2", "--seed", "5", "--no-progress"]
    alone, spread = tmp_path / "alone", tmp_path / "spread"
    assert _run(1, *train, "--iterations", "6", "--out", alone).returncode == 0
    first = _run(2, *train, "--iterations", "4", "--out", spread)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("run directory:") == 1 and "2 MPI ranks" in first.stdout  # rank 0 alone speaks
    resumed = _run(3, "-m", "scratchgan", "train", "--iterations", "6", "--no-progress", "--resume", spread)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def logged(run):
        return [line.split() for line in (run / "log.txt").read_text().splitlines()]

    assert [row[0] for row in logged(spread)] == ["2", "4", "6"]
    for a, b in zip(logged(alone), logged(spread)):
        assert a[0] == b[0]
        assert np.allclose([float(a[3].rstrip(",")), float(a[-1].rstrip("]"))],
                           [float(b[3].rstrip(",")), float(b[-1].rstrip("]"))], rtol=1e-4)


@needs_mpi
def test_disagreeing_ranks_and_too_small_a_batch_are_refused_without_hanging(tmp_path):
    refused = _run(3, "-m", "scratchgan", "train", "--batch-size", "2", "--iterations", "1", "--out", tmp_path / "b",
                   timeout=120)
    assert refused.returncode != 0
    assert "batch of 2 for D over 3 ranks: each rank needs at least one row" in refused.stderr
    mixed = subprocess.run([MPIEXEC, "-n", "1", sys.executable, "-m", "scratchgan", "train", "--iterations", "1",
                            "--seed", "1", "--out", str(tmp_path / "m"), ":", "-n", "1", sys.executable, "-m",
                            "scratchgan", "train", "--iterations", "1", "--seed", "2", "--out", str(tmp_path / "m")],
                           capture_output=True, text=True, timeout=120, cwd=HERE.parent)
    assert mixed.returncode != 0
    assert "the ranks disagree on the code, recipe, seed, data and starting iteration" in mixed.stderr
    assert not (tmp_path / "m" / "checkpoint.npz").exists()


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_synchronised_batch_norm_passes_a_gradient_check_across_ranks(tmp_path, ranks):
    """dx, dgamma and dbeta of batch norm whose statistics span the ranks, against central
    differences of the loss summed over every rank (float64, h = 1e-6)."""
    done = _run(ranks, HERE / "mpi" / "gradcheck_sync_bn.py", tmp_path / "errors.npz", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    errors = np.load(tmp_path / "errors.npz")
    assert int(errors["ranks"]) == ranks
    for key in ("dx", "gamma", "beta"):
        assert errors[key] < 1e-7, (key, float(errors[key]))


@needs_mpi
def test_each_rank_decodes_only_its_share_of_a_picture_folder(tmp_path):
    from PIL import Image

    from scratchgan.datasets.image_folder import load_image_folder

    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):  # 7 files over 3 ranks: shares of 3, 2 and 2
        Image.fromarray(rng.integers(0, 256, (11 + i, 9, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "3.png").write_bytes(b"not a picture")  # skipped, by the rank whose share holds it
    done = _run(3, HERE / "mpi" / "load_folder.py", folder, tmp_path / "out.npz", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    spread = np.load(tmp_path / "out.npz")
    alone, skipped = load_image_folder(folder, (8, 8, 3))
    np.testing.assert_array_equal(spread["images"], alone)  # the same pictures, in the same order
    assert list(spread["skipped"]) == [str(p) for p, _ in skipped] == [str(folder / "3.png")]
    assert list(spread["opened"]) == [3, 2, 2]


def test_ranks_that_would_fight_for_the_cores_are_warned_about(monkeypatch):
    from scratchgan import distributed

    monkeypatch.setattr(distributed.os, "cpu_count", lambda: 1)
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    warning = distributed.oversubscription_warning()
    assert "2 ranks on this machine" in warning and "OPENBLAS_NUM_THREADS=1" in warning
    monkeypatch.setenv("MPI_LOCALNRANKS", "1")
    assert distributed.oversubscription_warning() is None


def test_a_single_process_never_imports_mpi4py(tmp_path):
    code = ("import sys; from scratchgan.cli import main; "
            f"assert main(['train', '--iterations', '1', '--batch-size', '4', '--out', {str(tmp_path / 'r')!r}]) == 0; "
            "print('mpi4py' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


@needs_mpi
def test_the_scaling_script_measures_allreduce_and_models_every_zoo_model(tmp_path):
    from scratchgan import zoo

    report = {"models": [{"model": m, "backends": {"numba": {"ms_per_iter": 100.0}}} for m in zoo.MODELS]}
    (tmp_path / "bench.json").write_text(__import__("json").dumps(report))
    done = _run(2, HERE.parent / "examples" / "mpi_scaling.py", "--bench", tmp_path / "bench.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Allreduce of") == 5 and "on 2 ranks" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "ms |" in line]
    assert [row.split(" | ")[0][2:] for row in rows] == list(zoo.MODELS)
    assert all("| 100 ms |" in row for row in rows)  # the step times came from the report


@needs_mpi
def test_bench_ranks_reports_speed_and_the_collectives_of_each_rank_count(capsys):
    import json

    from scratchgan import zoo
    from scratchgan.cli import main

    assert main(["bench", "--ranks", "1", "2", "--models", "mlp", "--backends", "numpy", "--iterations", "3",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    one, two = report["results"]
    assert (one["ranks"], two["ranks"]) == (1, 2) and one["batch"] == two["batch"] == 128
    assert one["allreduce_calls_per_iter"] == 0 and one["collective_share"] == 0
    assert 0 < two["collective_share"] < 1 and two["ms_per_iter"] > 0
    g, d, recipe = zoo.build("mlp")
    assert recipe.d_mode == "separate"  # D is updated on the real and the fake batch: its gradients travel twice
    gradients = 4 * (2 * d.count_params() + g.count_params()) / 1e6  # float32
    assert gradients <= two["allreduce_mb_per_iter"] < gradients + 0.001  # plus a few losses and flags
    assert two["speedup"] == pytest.approx(one["ms_per_iter"] / two["ms_per_iter"])


def test_bench_ranks_refuses_pytorch_and_several_backends():
    from scratchgan.cli import main

    assert main(["bench", "--ranks", "2", "--backends", "torch"]) != 0
    assert main(["bench", "--ranks", "2", "--backends", "numpy", "numba"]) != 0
