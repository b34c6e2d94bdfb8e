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
    holder = rundir.claim(run)
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
    from scratchgan.train import load_checkpoint

    *_, arrays = load_checkpoint(run / "checkpoint.npz")
    assert int(arrays["iteration"]) >= 20
