"""A run directory: one run at a time, never written through a link, crash leftovers cleaned."""
import os
import signal
import subprocess
import sys
import time

import pytest

from scratchgan import rundir
from scratchgan.cli import main

TRAIN = ["train", "--iterations", "2", "--batch-size", "4", "--sample-interval", "1", "--no-progress", "--seed", "3"]


@pytest.fixture
def run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    capsys.readouterr()
    return run


@pytest.mark.parametrize("link", ["log.txt", "samples", "samples/iter_000002.png", "curves.png"])
def test_a_symbolic_link_in_the_run_directory_is_refused_and_nothing_is_written_through_it(run, tmp_path, capsys,
                                                                                           link):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious\n")
    path = run / link
    if path.is_dir():
        os.rename(path, tmp_path / "moved")
        path.symlink_to(outside)
    else:
        path.unlink()
        path.symlink_to(outside / "victim")
    assert main([*TRAIN[:2], "4", *TRAIN[3:], "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is a symbolic link" in err and "never through a link" in err
    assert (outside / "victim").read_text() == "precious\n"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


def test_a_second_run_in_the_same_directory_is_refused_naming_the_first(run, capsys):
    holder = rundir.Run.resume(run)
    try:
        assert main([*TRAIN[:2], "4", *TRAIN[3:], "--resume", str(run)]) == 2
        assert f"is in use by process {os.getpid()}" in capsys.readouterr().err
    finally:
        holder.close()
    assert main([*TRAIN[:2], "4", *TRAIN[3:], "--resume", str(run)]) == 0  # released: free again


def test_leftovers_of_a_killed_run_are_cleaned_and_the_log_never_repeats(run, capsys):
    (run / ".tmp-abc.npz").write_bytes(b"half a checkpoint")
    (run / "samples" / ".tmp-def.png").write_bytes(b"half a picture")
    with open(run / "log.txt", "a") as f:  # logged, then killed before the checkpoint was written
        f.write("3 [D loss: 0.1, acc.: 50.00%] [G loss: 0.2]\n")
    assert main([*TRAIN[:2], "4", *TRAIN[3:], "--resume", str(run)]) == 0
    assert "removed" in capsys.readouterr().err
    assert not list(run.glob(".tmp-*")) and not list((run / "samples").glob(".tmp-*"))
    iterations = [int(line.split()[0]) for line in (run / "log.txt").read_text().splitlines()]
    assert iterations == [1, 2, 3, 4]


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "scratchgan", *TRAIN[:2], "100000", *TRAIN[3:5],
                             "--sample-interval", "20", "--no-progress", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "log.txt").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: checkpoint written at iteration" in out
    from scratchgan.checkpoint import load as load_checkpoint

    *_, arrays = load_checkpoint(run / "checkpoint.npz")
    assert int(arrays["iteration"]) >= 20


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(data=5), "'data' should be a data source like \"mnist\" or a path, got 5"),
    (lambda c: c.update(model="dcgan"), "names model 'dcgan' but checkpoint.npz beside it holds a 'mlp' run"),
    (lambda c: c.update(seed=4), "names seed 4 but checkpoint.npz holds seed 3"),
    (lambda c: c.update(classes="frog"), "'classes' should be a list of class names"),
    (lambda c: c.clear() or c.update(model="mlp", seed=3, data=["mnist"]), "'data' should be a data source"),
    (lambda c: c.update(data="/etc"), "gives data '/etc' but checkpoint.npz was trained on 'mnist'"),
    (lambda c: c.update(classes=["3"]), "gives classes ['3'] but checkpoint.npz was trained on None"),
])
def test_a_resumed_config_is_checked_against_its_checkpoint(run, capsys, change, message):
    import json

    config = json.loads((run / "config.json").read_text())
    change(config)
    (run / "config.json").write_text(json.dumps(config))
    before = (run / "checkpoint.npz").read_bytes()
    assert main([*TRAIN[:2], "4", *TRAIN[3:], "--resume", str(run)]) == 2
    assert message in capsys.readouterr().err
    assert (run / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("field, value, message", [
    ("iteration", "three", "field 'iteration' should be one integer from 0 to 9,223,372,036,854,775,807, got <U5"),
    ("seed", -2, "field 'seed' should be one integer"),
    ("iteration", [1, 2], "field 'iteration' should be one integer"),
    ("recipe", '{"model": 7}', "field 'recipe' is not a valid recipe"),
    ("recipe", '{"model": "mlp", "batch_size": 0}', "field 'recipe' is not a valid recipe"),
    ("rng", '{"state": 1}', "field 'rng' is not a PCG64 random generator's state"),
    ("fixed_z", [[1.0, 2.0]], "field 'fixed_z' should be float32 of shape (16x100)"),
    ("history", [[1.0]], "field 'history' should be float64 of shape (Nx5)"),
])
def test_checkpoint_fields_of_the_wrong_kind_are_clear_errors(run, capsys, field, value, message):
    import numpy as np

    from scratchgan.safe_io import atomic_save_npz, read_npz as load_npz

    arrays = load_npz(run / "checkpoint.npz")
    arrays[field] = np.array(value)
    atomic_save_npz(run / "checkpoint.npz", arrays)
    assert main([*TRAIN[:2], "4", *TRAIN[3:], "--resume", str(run)]) == 2
    assert message in capsys.readouterr().err
