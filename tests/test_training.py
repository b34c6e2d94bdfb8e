"""The GAN loop end to end: finite losses, frozen D in the G step, checkpoints, resume, CLI."""
import json
import re

import numpy as np
import pytest

from scratchgan import zoo
from scratchgan.cli import main
from scratchgan.datasets import load_mnist
from scratchgan.checkpoint import load as load_checkpoint
from scratchgan.errors import CheckpointError
from scratchgan.rundir import Run
from scratchgan.train import GANTrainer, TrainingError, scale_images


@pytest.fixture(scope="module")
def data():
    images, _ = load_mnist()
    return scale_images(images[:512], (-1.0, 1.0), (28, 28, 1))


def _trainer(data, seed=0, batch=16, run_dir=None):
    g, d, recipe = zoo.mlp(seed=seed)
    recipe.batch_size = batch
    return GANTrainer(g, d, recipe, data, seed=seed, run=None if run_dir is None else Run.create(run_dir))


def test_data_scaling():
    x = scale_images(np.array([[[0, 255]]], dtype=np.uint8), (-1.0, 1.0), (1, 2, 1))
    np.testing.assert_allclose(x.ravel(), [-1, 1])
    assert x.dtype == np.float32
    with pytest.raises(TrainingError, match=r"data images have shape \(1, 2, 1\), the model expects \(28, 28, 1\)"):
        scale_images(np.zeros((1, 1, 2), np.uint8), (-1.0, 1.0), (28, 28, 1))


def test_an_iteration_trains_both_and_freezes_d_in_the_g_step(data, monkeypatch):
    t = _trainer(data)
    g0 = {k: v.copy() for k, v in t.G.params.items()}
    d_updates = []
    original = t.d_opt.step
    monkeypatch.setattr(t.d_opt, "step", lambda p, g: (d_updates.append(1), original(p, g)))
    flags = []
    d_backward = t.D.backward
    monkeypatch.setattr(t.D, "backward", lambda dy, need_param_grads=True, need_input_grad=True: (
        flags.append((need_param_grads, need_input_grad)), d_backward(dy, need_param_grads, need_input_grad))[1])
    d_loss, acc, g_loss = t.step()
    assert np.isfinite(d_loss) and np.isfinite(g_loss) and 0 <= acc <= 1
    assert len(d_updates) == 2  # real, then fake; none in the G step
    # the D steps want D's weights' gradients and no dx (their inputs are images);
    # the G step asks D for dx only
    assert flags == [(True, False), (True, False), (False, True)]
    assert all(not np.array_equal(g0[k], v) for k, v in t.G.params.items())


def test_no_iteration_differentiates_its_data_or_latent(data):
    """The first layers' backward-data GEMMs are skipped: D's first Dense never produces a
    gradient for the real or fake images in D's steps, G's never one for z."""
    from scratchgan.ops import registry

    t = _trainer(data, batch=8)
    t.step()
    outputs = []
    registry.set_observer(lambda name, args, out, dt: outputs.append((name, getattr(out, "shape", None))))
    try:
        t.step()
    finally:
        registry.set_observer(None)
    data_grads = [shape for name, shape in outputs if name == "dense_backward_data"]
    # D's second Dense gives dL/dh for D's first in each of the three D backwards, G's second
    # gives dL/dh for G's first; the only gradient of an image is the G step's dL/dG(z)
    assert sorted(data_grads) == [(8, 128)] * 4 + [(8, 784)]
    assert (8, 100) not in data_grads


def test_a_short_run_learns_something(data):
    t = _trainer(data, batch=32)
    first = [t.step() for _ in range(5)]
    for _ in range(60):
        last = t.step()
    assert last[1] > 0.5  # D tells real from fake better than chance
    assert first[0][0] != last[0]


def test_resume_is_bit_for_bit(data, tmp_path):
    straight = _trainer(data, seed=3)
    straight_losses = [straight.step() for _ in range(6)]

    first = _trainer(data, seed=3)
    losses = [first.step() for _ in range(3)]
    first.save_checkpoint(tmp_path / "ckpt.npz")
    g, d, recipe, arrays = load_checkpoint(tmp_path / "ckpt.npz")
    resumed = GANTrainer(g, d, recipe, data, seed=int(arrays["seed"]))
    resumed.load_state_arrays(arrays)
    losses += [resumed.step() for _ in range(3)]
    assert losses == straight_losses
    for k, v in straight.G.params.items():
        np.testing.assert_array_equal(resumed.G.params[k], v)


def test_checkpoint_write_is_atomic(data, tmp_path, monkeypatch):
    t = _trainer(data)
    t.step()
    path = tmp_path / "checkpoint.npz"
    t.save_checkpoint(path)
    before = path.read_bytes()
    t.step()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    csv_before = (tmp_path / "metrics.csv").read_text()
    with pytest.raises(OSError, match="disk full"):
        t.save_checkpoint(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "metrics.csv"]  # no temporary left
    assert (tmp_path / "metrics.csv").read_text() == csv_before


def test_a_non_finite_loss_stops_with_the_step(data, tmp_path):
    t = _trainer(data)
    t.G.params["dense/kernel"][...] = np.nan
    with pytest.raises(TrainingError, match="iteration 1: loss is not finite"):
        t.step()


def test_not_a_checkpoint(tmp_path):
    np.savez(tmp_path / "w.npz", a=np.ones(2))
    with pytest.raises(CheckpointError, match="not a scratchgan training checkpoint"):
        load_checkpoint(tmp_path / "w.npz")


def test_cli_train_resume_sample(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--batch-size", "8", "--sample-interval", "2", "--seed", "7"]
    assert main(["train", "--iterations", "4", "--out", str(run), *common]) == 0
    log = (run / "log.txt").read_text().splitlines()
    assert len(log) == 2 and log[1].startswith("4 [D loss: ") and "acc.: " in log[1] and "[G loss: " in log[1]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["iter_000002.png", "iter_000004.png"]
    assert json.loads((run / "config.json").read_text())["seed"] == 7

    assert main(["train", "--resume", str(run), "--iterations", "6"]) == 0
    assert (run / "log.txt").read_text().splitlines()[-1].startswith("6 [D loss: ")

    straight = tmp_path / "straight"
    assert main(["train", "--iterations", "6", "--out", str(straight), *common]) == 0
    assert (run / "log.txt").read_text() == (straight / "log.txt").read_text()
    # every iteration's losses, not only the logged ones, equal the uninterrupted run's
    resumed_rows = np.loadtxt(run / "metrics.csv", delimiter=",", skiprows=1)
    straight_rows = np.loadtxt(straight / "metrics.csv", delimiter=",", skiprows=1)
    assert resumed_rows.shape == (6, 5)
    np.testing.assert_array_equal(resumed_rows[:, :4], straight_rows[:, :4])  # all but the seconds
    from PIL import Image

    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 3  # the grids of iterations 2, 4 and 6
    with Image.open(run / "curves.png") as curves:
        assert curves.size == (900, 600)

    assert main(["sample", str(run / "checkpoint.npz"), "--n", "10", "--out", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (10, 28, 28, 1) and samples.min() >= 0 and samples.max() <= 1
    assert main(["sample", str(run), "--n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 28 * 3


def test_cli_refuses_to_overwrite_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--iterations", "1", "--batch-size", "4", "--out", str(run), "--seed", "1"]) == 0
    assert main(["train", "--iterations", "1", "--batch-size", "4", "--out", str(run)]) == 2
    assert "already holds a run; use --resume" in capsys.readouterr().err


def test_cli_errors(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "a.png")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", "--model", "vae", "--out", str(tmp_path / "r")]) == 2
    assert "unknown model 'vae'" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--iterations", "1", "--out", str(tmp_path / "r2")]) == 2
    assert "no PNG or JPEG images found" in capsys.readouterr().err
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"junk")
    assert main(["train", "--data", str(tmp_path), "--iterations", "1", "--out", str(tmp_path / "r3")]) == 2
    assert "expected train-images-idx3-ubyte and train-labels-idx1-ubyte" in capsys.readouterr().err
    assert main(["train", "--model", "cifar_frog", "--data", "mnist", "--out", str(tmp_path / "r4")]) == 2
    assert "holds 28x28x1 images but the model expects 32x32x3" in capsys.readouterr().err
    assert not (tmp_path / "r4" / "checkpoint.npz").exists()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 in the matmul: the point
def test_a_non_finite_loss_keeps_the_last_good_checkpoint(data, tmp_path):
    t = _trainer(data, seed=2, run_dir=tmp_path)
    real_advance = t.advance

    def advance_that_diverges():
        if t.iteration == 5:
            t.G.params["dense/kernel"][...] = np.inf
        real_advance()

    t.advance = advance_that_diverges
    with pytest.raises(TrainingError, match="iteration 6: loss is not finite"):  # read at 8, named as 6
        t.train(iterations=10, sample_interval=4, log=lambda line: None)
    _, _, _, arrays = load_checkpoint(tmp_path / "checkpoint.npz")
    assert int(arrays["iteration"]) == 4 and np.isfinite(arrays["G/dense/kernel"]).all()


def test_ctrl_c_finishes_the_step_and_checkpoints(data, tmp_path):
    """SIGINT mid-run: the iteration under way completes, a checkpoint is written, and a
    resumed run continues exactly as an uninterrupted one."""
    import os
    import signal

    run = tmp_path / "run"
    run.mkdir()
    t = _trainer(data, seed=4, run_dir=run)
    real_advance = t.advance

    def advance_then_interrupt():
        real_advance()
        if t.iteration == 3:
            os.kill(os.getpid(), signal.SIGINT)

    t.advance = advance_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        t.train(iterations=10, sample_interval=100, log=lambda line: None)
    assert t.iteration == 3
    g, d, recipe, arrays = load_checkpoint(run / "checkpoint.npz")
    assert int(arrays["iteration"]) == 3
    resumed = GANTrainer(g, d, recipe, data, seed=4)
    resumed.load_state_arrays(arrays)
    straight = _trainer(data, seed=4)
    for _ in range(3):
        straight.step()
    assert resumed.step() == straight.step()


def test_progress_bar_shows_rate_and_losses(data, tmp_path, capsys):
    t = _trainer(data, seed=5, run_dir=tmp_path)
    t.train(iterations=20, sample_interval=10, progress=True)
    err = capsys.readouterr().err
    assert "20/20" in err and "it/s" in err and "D loss" in err and "acc" in err and "G loss" in err
    images_per_s = float(err.rsplit(" img/s", 1)[0].rsplit(" ", 1)[1].replace(",", ""))
    assert images_per_s > 0  # the recipe's (global) batch times iterations per second
    assert (tmp_path / "log.txt").read_text().splitlines()[-1].startswith("20 [D loss: ")


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "lr must be a positive finite number, got nan"),
    (["--d-lr", "inf"], "lr must be a positive finite number, got inf"),
    (["--real-label", "nan"], "real_label must be a number in \\[0, 1\\], got nan"),
    (["--fake-label", "-0.5"], "fake_label must be a number in \\[0, 1\\]"),
    (["--set", "d_optimizer.epsilon=NaN"], "epsilon must be a positive finite number, got nan"),
    (["--optimizer", "SGD", "--momentum", "nan"], "momentum must be in \\[0, 1\\), got nan"),
    (["--class", "airplane"], "unknown class 'airplane'"),
])
def test_bad_values_are_refused_before_the_run_directory_exists(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    assert main(["train", "--iterations", "1", "--batch-size", "4", "--out", str(run), *args]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not run.exists()


def test_a_batch_no_memory_can_hold_is_refused_before_anything_is_written(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--batch-size", "2000000", "--out", str(run)]) == 2
    assert re.search(r"training mlp at batch size 2,000,000 with z_dim 100 needs about [\d.,]+ GiB, more than "
                     r"the memory budget", capsys.readouterr().err)
    assert not run.exists()


def test_what_a_run_writes_at_the_extremes_of_the_command_line_loads_again(tmp_path, capsys):
    largest = str(2**63 - 1)
    run = tmp_path / "run"
    assert main(["train", "--iterations", "2", "--batch-size", "4", "--sample-interval", largest, "--seed", largest,
                 "--no-progress", "--out", str(run)]) == 0
    assert main(["train", "--iterations", "3", "--no-progress", "--resume", str(run)]) == 0
    assert main(["sample", str(run), "--n", "4", "--seed", largest, "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    for args in (["--seed", str(2**64)], ["--seed", "-1"], ["--iterations", str(2**63)], ["--batch-size", "0"]):
        with pytest.raises(SystemExit):
            main(["train", *args, "--out", str(tmp_path / "never")])
        assert "must be" in capsys.readouterr().err
    assert main(["train", "--z-dim", str(10**12), "--out", str(tmp_path / "never")]) == 2
    assert "z_dim must be an integer from 1 to 1,048,576, got 1000000000000" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_progress_gif_of_a_long_run_is_thinned_so_its_memory_stays_flat(tmp_path):
    from PIL import Image

    from scratchgan.plots import MAX_FRAMES, evenly_spaced, grids_to_gif

    assert evenly_spaced(range(10), 4) == [0, 3, 6, 9] and evenly_spaced(range(3), 5) == [0, 1, 2]
    grids = []
    for i in range(1, 301):
        grids.append((f"iteration {i}", np.full((16, 4, 4, 1), i % 256, np.uint8)))
    grids_to_gif(grids, tmp_path / "progress.gif")
    with Image.open(tmp_path / "progress.gif") as gif:
        assert gif.n_frames == MAX_FRAMES
        gif.seek(MAX_FRAMES - 1)
        assert np.asarray(gif.convert("L"))[25, 9] == 300 % 256  # the last grid is the last frame


def test_a_class_filter_that_leaves_no_image_is_refused_before_writing(tmp_path, capsys):
    from scratchgan.datasets import write_idx

    data = tmp_path / "digits"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte", np.zeros((6, 28, 28), np.uint8))
    write_idx(data / "train-labels-idx1-ubyte", np.array([1, 1, 2, 2, 3, 3], np.uint8))
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--class", "7", "--out", str(run)]) == 2
    assert "--class 7:" in (err := capsys.readouterr().err) and "holds no image of that class" in err
    assert not run.exists()


@pytest.mark.parametrize("argv, option", [(["train", "--iterations", "0"], "--iterations"),
                                          (["sample", "run", "--n", "0", "--out", "x.png"], "--n"),
                                          (["gradcheck", "--input-shape", "0"], "--input-shape")])
def test_an_argument_error_is_one_line_and_a_hint_not_the_whole_usage(capsys, argv, option):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err
    assert f"argument {option}" in err and f"(see: scratchgan {argv[0]} --help)" in err


def test_a_resume_reports_what_it_ran_and_refuses_a_target_already_reached(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--iterations", "3", "--batch-size", "4", "--no-progress", "--out", str(run)]) == 0
    assert "done: 3 iterations, 0 to 3 (" in capsys.readouterr().out
    for target in ("3", "2"):
        assert main(["train", "--resume", str(run), "--iterations", target, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is at iteration 3 already; give --iterations above it" in err
    assert main(["train", "--resume", str(run), "--iterations", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "from iteration 3 to 5" in out and "done: 2 iterations, 3 to 5 (" in out
