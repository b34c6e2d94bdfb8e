"""The example scripts, one per tutorial, run (a few iterations each) and write their grids."""
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchgan import zoo

# pytorch_twin.py is not a training script but the module `scratchgan bench` loads for its
# PyTorch column (needs torch); tests/test_bench.py covers it. train_mnist_classifier.py is
# not a GAN: tests/test_evaluate.py runs it; mpi_scaling.py is tests/test_distributed.py's and
# draw_figures.py tests/test_docs.py's; thread_threshold.py, train_against_pytorch.py, pytorch_ops.py,
# winograd_layers.py, memory_bound_ops.py, chunk_sizes.py, ops_against_numpy.py and gemm_on_numba_threads.py
# (measurements, not training)
# tests/test_bench.py's
NOT_TRAINING = ("pytorch_twin.py", "train_mnist_classifier.py", "mpi_scaling.py", "draw_figures.py", "thread_threshold.py",
                "train_against_pytorch.py", "pytorch_ops.py", "winograd_layers.py", "memory_bound_ops.py",
                "chunk_sizes.py", "ops_against_numpy.py", "gemm_on_numba_threads.py")
EXAMPLES = sorted(p for p in (Path(__file__).parent.parent / "examples").glob("*.py") if p.name not in NOT_TRAINING)


def tiny_cifar_folder(folder, rng, frogs=30):
    """A CIFAR-10 binary batch of random frogs (label 6) and a few other images."""
    labels = np.array([6] * frogs + [0, 9, 3], np.uint8)
    pixels = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
    return folder


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path, rng):
    extra = ["--data", str(tiny_cifar_folder(tmp_path / "cifar", rng))] if script.stem == "cifar_frog" else []
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(script), "--iterations", "3", "--sample-interval", "3", "--batch-size", "8",
         "--out", str(out), *extra],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "3 [D loss: " in result.stdout
    assert list(out.glob("*.png"))
    g, d, _ = zoo.build(script.stem)  # the script's networks are the zoo's, layer for layer
    assert f"Total params: {g.count_params():,}" in result.stdout
    assert f"Total params: {d.count_params():,}" in result.stdout


def test_there_is_one_example_per_zoo_model():
    assert sorted(p.stem for p in EXAMPLES) == sorted(zoo.MODELS)


@pytest.mark.parametrize("script", [p for p in EXAMPLES if p.stem != "cifar_frog"], ids=lambda p: p.name)
def test_example_runs_on_the_cupy_backend_emulated(script, tmp_path, fake_cupy, monkeypatch, capsys):
    """--backend cupy: the data, the noise and the labels are created where the weights live
    (CuPy faked on the CPU with the emulated CUDA kernels; cifar_frog's 32x32x256 convolutions
    are too slow through the emulator, and its loop uses the same calls as the others)."""
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [str(script), "--backend", "cupy", "--iterations", "2", "--sample-interval", "2",
                                      "--batch-size", "2", "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    assert "2 [D loss: " in capsys.readouterr().out
    assert list(out.glob("*.png"))


def test_example_without_its_data_ends_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    script = next(p for p in EXAMPLES if p.stem == "cifar_frog")
    result = subprocess.run([sys.executable, str(script), "--data", str(empty), "--iterations", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("cifar_frog.py: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_example_with_an_unknown_backend_ends_with_one_line():
    result = subprocess.run([sys.executable, str(EXAMPLES[0]), "--backend", "tpu", "--iterations", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "error: unknown backend 'tpu'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
