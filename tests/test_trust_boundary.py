"""Each known way in through a file or a size, refused with one line before anything is used.

The fuzzer (test_fuzz.py) searches for new ones; these pin down the ones found so far.
"""
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from scratchgan.cli import main
from scratchgan.errors import FileRefused

TRAIN = ["--backend", "numpy", "train", "--iterations", "2", "--batch-size", "4", "--sample-interval", "1",
         "--no-progress", "--seed", "3"]
RESUME = ["train", "--iterations", "3", "--no-progress", "--resume"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    return run


@pytest.fixture
def run(finished, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    capsys.readouterr()
    return copy


def rewrite_checkpoint(run, **changes):
    path = run / "checkpoint.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def refusal(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scratchgan ")]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("moment, message", [
    (np.zeros(1, np.float32), r"opt_D/dense/kernel/m' should be float32 of shape \(784x128\)"),
    (np.array(0.0, np.float32), r"opt_D/dense/kernel/m' should be float32 of shape \(784x128\)"),
    (np.array(["text"]), r"opt_D/dense/kernel/m' should be float32"),
])
def test_a_crafted_optimizer_moment_is_refused_before_any_kernel_sees_it(run, capsys, moment, message):
    """These once corrupted the heap on the numba backend (an Adam moment of shape (1,))."""
    rewrite_checkpoint(run, **{"opt_D/dense/kernel/m": moment})
    code = subprocess.run([sys.executable, "-m", "scratchgan", "--backend", "numba", *RESUME, str(run)],
                          capture_output=True, text=True, timeout=300)
    assert code.returncode == 2, code.stderr
    assert "Traceback" not in code.stderr
    assert re.search(message, code.stderr), code.stderr


def test_the_numba_launcher_checks_in_place_arguments_itself():
    from scratchgan.kernels.numba.checks import KernelArgumentError
    from scratchgan.kernels.numba.optim import adam_update

    p = np.zeros((4, 5), np.float32)
    with pytest.raises(KernelArgumentError, match="m is float32 \\(1,\\)"):
        adam_update(p, np.zeros_like(p), np.zeros(1, np.float32), np.zeros_like(p), 1e-3, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(KernelArgumentError, match="v is float64"):
        adam_update(p, np.zeros_like(p), np.zeros_like(p), np.zeros((4, 5)), 1e-3, 0.9, 0.999, 1e-7, 1)


@pytest.mark.parametrize("field, value, message", [
    ("history", np.array([[1, 0.5, 0.5, np.inf, 0.1], [2, 0.5, 0.5, 0.5, 0.2]]), "history' holds NaN or infinite"),
    ("G/dense/kernel", np.full((100, 128), np.nan, np.float32), "G/dense/kernel' holds NaN"),
    ("recipe", np.array('{"model": "mlp", "z_dim": 1000000000000}'), "z_dim must be an integer from 1 to"),
    ("rng", np.array('{"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}, "has_uint32": 0, "uinteger": 0}'),
     "not a PCG64 random generator's state"),
    ("iteration", np.array(1), "history' should hold at most one row per iteration"),
    ("surprise", np.zeros(2), "unexpected field 'surprise'"),
])
def test_checkpoint_fields_are_checked_against_the_schema(run, capsys, field, value, message):
    rewrite_checkpoint(run, **{field: value})
    assert main([*RESUME, str(run)]) == 2
    assert message in refusal(capsys)


def test_an_npy_header_declaring_a_terabyte_is_refused_before_allocating(run, capsys):
    import zipfile

    path = run / "checkpoint.npz"
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40,)})
    members["G/dense/kernel.npy"] = header.getvalue() + b"\0" * 16
    with zipfile.ZipFile(path, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    assert main([*RESUME, str(run)]) == 2
    assert "header declares shape (1099511627776,) of float32" in refusal(capsys)


def test_hard_links_in_a_run_are_refused_and_the_other_file_untouched(run, tmp_path, capsys):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    (run / "log.txt").unlink()
    os.link(outside, run / "log.txt")
    assert main([*RESUME, str(run)]) == 2
    assert "has 2 hard links" in refusal(capsys)
    assert outside.read_text() == "keep me\n"
    (run / "log.txt").unlink()
    (run / ".lock").unlink()
    os.link(outside, run / ".lock")
    assert main([*RESUME, str(run)]) == 2
    assert ".lock has 2 hard links" in refusal(capsys)
    assert outside.read_text() == "keep me\n"


def test_a_run_copied_with_hard_links_cannot_append_to_the_original(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-al", str(run), str(copy)], check=True)
    log = (run / "log.txt").read_text()
    assert main([*RESUME, str(copy)]) == 2
    line = refusal(capsys)
    assert "hard links" in line and "copy a run with `cp -a`, not `cp -al`" in line
    assert (run / "log.txt").read_text() == log


@pytest.mark.parametrize("name", ["log.txt", "config.json", "samples/iter_000003.png", "checkpoint.npz"])
def test_a_fifo_in_a_run_is_refused_without_hanging(run, capsys, name):
    path = run / name
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    assert main([*RESUME, str(run)]) == 2
    assert "FIFO" in refusal(capsys)


def test_sample_refuses_a_fifo_and_keeps_the_extension_as_typed(run, tmp_path, capsys):
    os.mkfifo(tmp_path / "f.npy")
    assert main(["sample", str(run), "--out", str(tmp_path / "f.npy")]) == 2
    assert "is a FIFO" in refusal(capsys)
    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "X.NPY")]) == 0
    assert np.load(tmp_path / "X.NPY").shape == (3, 28, 28, 1)
    assert not (tmp_path / "X.NPY.npy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # written atomically


@pytest.mark.parametrize("argv, message", [
    (["sample", "RUN", "--n", str(10**12), "--out", "x.png"], "more than the memory budget"),
    (["--backend", "numpy", "train", "--batch-size", "200000", "--out", "NEW"], "choose a smaller --batch-size"),
    (["--backend", "numpy", "train", "--z-dim", "1000000", "--out", "NEW"], "more than the memory budget"),
    (["evaluate", "RUN", "--n", str(10**12)], "choose a smaller --n"),
])
def test_sizes_from_options_are_checked_against_the_budget_before_writing(run, tmp_path, capsys, argv, message):
    argv = [str(run) if a == "RUN" else str(tmp_path / "new") if a == "NEW" else a for a in argv]
    assert main(["--memory-budget", "1G", *argv]) == 2
    assert message in refusal(capsys)
    assert not (tmp_path / "new").exists()


def test_an_idx_file_declaring_a_gigabyte_is_refused_before_reading(tmp_path, capsys):
    import struct

    folder = tmp_path / "digits"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**20 + 1, 28, 28))
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 0))
    assert main(["--memory-budget", "1G", *TRAIN, "--data", str(folder), "--out", str(tmp_path / "r")]) == 2
    assert "more than the memory budget" in refusal(capsys)
    assert not (tmp_path / "r").exists()


def test_empty_data_is_refused_before_the_run_directory_exists(tmp_path, capsys):
    from scratchgan.datasets import write_idx

    folder = tmp_path / "digits"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    assert main([*TRAIN, "--data", str(folder), "--out", str(tmp_path / "r")]) == 2
    assert "holds no images" in refusal(capsys)
    assert not (tmp_path / "r").exists()


def _tar(members, mode="w:xz"):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, raw in members:
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return out.getvalue()


def test_cifar_archives_are_bounded_truncated_ones_refused(tmp_path, monkeypatch):
    from scratchgan.datasets import cifar10

    record = b"\x01" + bytes(3072)
    raw = _tar([("cifar-10-batches-bin/data_batch_1.bin", record * 2)])
    (tmp_path / "cut.tar.xz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(cifar10.CIFARFormatError, match="not a readable tar archive"):
        cifar10.load_cifar10(str(tmp_path / "cut.tar.xz"))
    many = _tar([(f"junk{i}", b"x") for i in range(20)] + [("data_batch_1.bin", record)], mode="w:gz")
    (tmp_path / "many.tar.gz").write_bytes(many)
    monkeypatch.setattr(cifar10, "MAX_MEMBERS", 10)
    with pytest.raises(cifar10.CIFARFormatError, match="more than 10 members"):
        cifar10.load_cifar10(str(tmp_path / "many.tar.gz"))
    (tmp_path / "empty.tar").write_bytes(_tar([("cifar-10-batches-bin/data_batch_1.bin", b"")], mode="w"))
    with pytest.raises(cifar10.CIFARFormatError, match="0 bytes is not a whole number of CIFAR-10 records"):
        cifar10.load_cifar10(str(tmp_path / "empty.tar"))


def test_a_jpeg_of_thousands_of_scans_is_skipped_not_decoded(tmp_path):
    from PIL import Image

    from scratchgan.datasets.image_folder import decode_images

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(out, format="JPEG", progressive=True)
    raw = out.getvalue()
    (tmp_path / "slow.jpg").write_bytes(raw[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" * 3000 + raw[-2:])
    (tmp_path / "ok.jpg").write_bytes(raw)
    images, skipped = decode_images([tmp_path / "ok.jpg", tmp_path / "slow.jpg"], 8, 8, 3)
    assert len(images) == 1 and "scans" in skipped[0][1]


def test_the_runs_own_pictures_are_never_decoded_on_resume(run, capsys):
    """An EPS named like a sample, a huge PNG and an odd name in samples/ change nothing."""
    (run / "samples" / "iter_000001.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    (run / "samples" / "iter_final.png").write_bytes(b"not a picture")
    assert main([*RESUME, str(run)]) == 0
    from PIL import Image

    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 3  # the grids of iterations 1, 2 and 3, from the checkpoint


def test_config_json_must_be_an_object_of_bounded_size(run, capsys):
    (run / "config.json").write_text("[]")
    assert main([*RESUME, str(run)]) == 2
    assert "expected a JSON object, got list" in refusal(capsys)
    (run / "config.json").write_text(" " * (2 << 20) + "{}")
    assert main([*RESUME, str(run)]) == 2
    assert "more than a config file may have here" in refusal(capsys)


def test_small_ones(run, tmp_path, capsys):
    assert main([*TRAIN, "--d-lr", "0", "--out", str(tmp_path / "a")]) == 2
    assert "lr must be a positive finite number, got 0.0" in refusal(capsys)
    assert not (tmp_path / "a").exists()
    assert main([*TRAIN, "--set", "z_dim=5", "--out", str(tmp_path / "b")]) == 0
    from scratchgan.checkpoint import load

    assert load(tmp_path / "b" / "checkpoint.npz")[2].z_dim == 5
    assert main([*TRAIN, "--data", "evil\x1b[31mname\n", "--out", str(tmp_path / "c")]) == 2
    line = refusal(capsys)
    assert "\\x1b[31m" in line and "\x1b" not in line


def test_a_bug_shows_its_traceback_not_a_one_line_error(monkeypatch):
    from scratchgan import cli

    monkeypatch.setattr(cli, "cmd_models", lambda args: {}["missing"])
    with pytest.raises(KeyError):
        main(["models"])
    monkeypatch.setattr(cli, "cmd_models", lambda args: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["models"])


def _error_types():
    from scratchgan.datasets.catalog import DataError
    from scratchgan.errors import CheckpointError, ConfigError, TrainingError, UsageError
    from scratchgan.layers.base import LayerError

    return [DataError, LayerError, CheckpointError, ConfigError, UsageError, TrainingError]


@pytest.mark.parametrize("error", _error_types(), ids=lambda e: e.__name__)
def test_each_kind_of_bad_input_is_one_line_and_status_2(monkeypatch, capsys, error):
    """The library's own error types are the command line's user errors: one line, no traceback."""
    from scratchgan import cli

    def refuse(args):
        raise error("what was wrong\nand what was expected")

    monkeypatch.setattr(cli, "cmd_models", refuse)
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err == "scratchgan models: error: what was wrong\\nand what was expected\n"


def test_the_validated_reader_refuses_links_and_oversized_files(tmp_path, monkeypatch):
    from scratchgan import safe_io

    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(FileRefused, match="is a symbolic link"):
        safe_io.read_json(tmp_path / "link.json")
    assert safe_io.read_json(tmp_path / "link.json", typed=True) == {}  # a path the user typed is resolved
    monkeypatch.setitem(safe_io.LIMITS, "config", 1)
    with pytest.raises(FileRefused, match="2 bytes is more than a config file may have here"):
        safe_io.read_json(tmp_path / "real.json")
