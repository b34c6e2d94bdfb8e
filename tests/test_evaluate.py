"""scratchgan evaluate: the Fréchet distance, coverage, the shipped classifier, the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchgan import zoo
from scratchgan.classifier import WEIGHTS, accuracy, load_classifier
from scratchgan.cli import main
from scratchgan.datasets import load_mnist
from scratchgan.evaluate import applicability, coverage, evaluate_generator, frechet_distance, psd_sqrt
from scratchgan.gradcheck import gradcheck_loss
from scratchgan.losses import LossError, SoftmaxCrossentropy

ROOT = Path(__file__).parent.parent


def test_softmax_cross_entropy_value_and_gradient(rng):
    z = np.array([[2.0, 0.0, -1.0], [1000.0, 0.0, 0.0]])  # the second row would overflow a naive exp
    y = np.array([0, 2])
    loss = SoftmaxCrossentropy()
    p0 = np.exp(2) / (np.exp(2) + 1 + np.exp(-1))
    assert loss.forward(z, y) == pytest.approx((-np.log(p0) + 1000.0) / 2)
    report = gradcheck_loss(SoftmaxCrossentropy(), rng.normal(0, 2, (9, 10)), rng.integers(0, 10, 9))
    assert report.max_error < 1e-7
    with pytest.raises(LossError, match=r"labels must be 2 integers in 0..2"):
        loss.forward(z, np.array([0, 3]))
    with pytest.raises(LossError, match="labels must be"):
        loss.forward(z, np.array([0.0, 1.0]))


def test_psd_sqrt_squares_back(rng):
    a = rng.standard_normal((6, 6))
    cov = a @ a.T
    root = psd_sqrt(cov)
    np.testing.assert_allclose(root @ root, cov, atol=1e-10)
    np.testing.assert_allclose(root, root.T, atol=1e-12)


def test_frechet_distance_closed_form_for_diagonal_gaussians(rng):
    """For diagonal covariances FD = |mu_a - mu_b|^2 + sum (sd_a - sd_b)^2, checked on
    feature sets made to have exactly the wanted means and diagonal covariances."""
    def exact(mean, sd, n=400):
        x = rng.standard_normal((n, len(mean)))
        q, _ = np.linalg.qr(x - x.mean(0))  # orthonormal, zero-mean columns
        return mean + q * np.sqrt(n - 1) * sd

    mu_a, sd_a, mu_b, sd_b = np.array([0.0, 1, 2]), np.array([1.0, 2, 0.5]), np.array([1.0, 1, 0]), np.array([2.0, 2, 1])
    a, b = exact(mu_a, sd_a), exact(mu_b, sd_b)
    want = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_is_symmetric_and_rotation_invariant(rng):
    a = rng.standard_normal((300, 5)) @ rng.standard_normal((5, 5))
    b = rng.standard_normal((300, 5)) * 2 + 1
    rotation, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    d = frechet_distance(a, b)
    assert d > 0
    assert frechet_distance(b, a) == pytest.approx(d, rel=1e-8)
    assert frechet_distance(a @ rotation, b @ rotation) == pytest.approx(d, rel=1e-8)


def test_coverage():
    one_class = np.eye(10)[[3] * 50]
    shares, evenness = coverage(one_class)
    assert shares[3] == 1 and evenness == 0
    assert f"{evenness:.3f}" == "0.000"  # not "-0.000"
    shares, evenness = coverage(np.eye(10)[np.arange(100) % 10])
    assert evenness == pytest.approx(1.0) and np.allclose(shares, 0.1)


def test_shipped_classifier_is_what_its_script_reported():
    model, facts = load_classifier()
    images, labels = load_mnist()
    held_out = accuracy(model, images[8000:].astype(np.float32)[..., None] / 255, labels[8000:])
    assert held_out > 0.95
    assert held_out == pytest.approx(facts["held_out_accuracy"], abs=1e-12)
    assert facts["train_images"] == 8000 and WEIGHTS.exists()


def test_real_digits_score_near_the_floor_and_noise_far_from_it(rng):
    classifier, _ = load_classifier()
    images, _ = load_mnist()

    class Copier:  # a "generator" that returns real digits, and one that returns noise, in order
        def __init__(self, source):
            self.source, self.made = source, 0

        def predict(self, z, batch_size=None):
            self.made += len(z)
            return self.source[self.made - len(z): self.made]

    _, _, recipe = zoo.mlp()
    real01 = images.astype(np.float32)[..., None] / 255
    noise = rng.uniform(-1, 1, (1000, 28, 28, 1)).astype(np.float32)
    copies = evaluate_generator(Copier(real01[::-1] * 2 - 1), recipe, classifier, images, n=1000)
    noisy = evaluate_generator(Copier(noise), recipe, classifier, images, n=1000)
    assert copies["frechet_distance"] < 3 * copies["frechet_distance_real"] + 1
    assert noisy["frechet_distance"] > 50 * copies["frechet_distance"]
    assert copies["evenness"] > 0.98 and copies["confidence"] > 0.9


def test_a_diverged_generator_and_too_few_samples_are_refused_not_scored():
    classifier, _ = load_classifier()
    images, _ = load_mnist()

    class Diverged:
        def predict(self, z, batch_size=None):
            out = np.zeros((len(z), 28, 28, 1), np.float32)
            out[::3] = np.nan
            return out

    _, _, recipe = zoo.mlp()
    with pytest.raises(ValueError, match="not finite \\(NaN or infinite\\) for 34 of 100 samples"):
        evaluate_generator(Diverged(), recipe, classifier, images, n=100)
    with pytest.raises(ValueError, match="--n 1: a Frechet distance needs the covariance of at least 10 samples"):
        evaluate_generator(Diverged(), recipe, classifier, images, n=1)


def test_cli_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--iterations", "2", "--batch-size", "8", "--out", str(run), "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--n", "300", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["samples"] == 300 and scores["iteration"] == 2 and len(scores["class_shares"]) == 10
    assert scores["frechet_distance"] > scores["frechet_distance_real"] > 0
    assert scores["applies"] is True and scores["note"] is None and scores["trained_on"] == "mnist"
    assert main(["evaluate", str(run), "--n", "300"]) == 0
    out = capsys.readouterr().out
    assert "real vs real floor" in out and "note:" not in out
    g, d, recipe = zoo.cifar_frog(seed=0)
    from scratchgan.train import GANTrainer

    GANTrainer(g, d, recipe, np.zeros((4, 32, 32, 3), np.float32), seed=0).save_checkpoint(tmp_path / "frog.npz")
    assert main(["evaluate", str(tmp_path / "frog.npz")]) == 2
    assert "scores 28x28x1 (MNIST-like) generators; model 'cifar_frog' makes 32x32x3" in capsys.readouterr().err


def test_classifier_script_writes_loadable_weights(tmp_path):
    out = tmp_path / "clf.npz"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mnist_classifier.py"), "--train", "2000",
                             "--epochs", "2", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    model, facts = load_classifier(out)
    assert facts["train_images"] == 2000 and facts["held_out_accuracy"] > 0.8
    assert model.count_params() == 109_386  # 784*128+128 + 128*64+64 + 64*10+10


def test_evaluate_says_when_its_score_does_not_apply(tmp_path, capsys):
    """A generator trained on other pictures gets its distance to MNIST, and a note saying
    that this distance does not measure it."""
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(pictures / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--iterations", "2", "--batch-size", "4", "--data", str(pictures), "--out", str(run),
                 "--seed", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--n", "200"]) == 0
    out = capsys.readouterr().out
    assert f"note: this generator was trained on {pictures}, not on mnist" in out and "do not apply" in out
    assert main(["evaluate", str(run), "--n", "200", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["applies"] is False and scores["trained_on"] == str(pictures)


def test_applicability():
    assert applicability("mnist", None, "mnist") is None
    assert applicability("mnist-full", None, "mnist") is None
    assert "classes 3 of mnist only" in applicability("mnist", ["3"], "mnist")
    assert "not on fashion-mnist" in applicability("mnist", None, "fashion-mnist")
    assert applicability("embedded", None, "mnist") is None
    assert "classes frog of cifar10 only" in applicability("cifar10:frog", None, "cifar10")


def test_a_long_evaluation_shows_its_progress(capsys):
    """The bar counts images made, then classified (n each for the samples and the two real
    halves): 4 n in all, on stderr, so --json stays clean."""
    classifier, _ = load_classifier()
    images, _ = load_mnist()
    g, _, recipe = zoo.mlp(seed=0)
    evaluate_generator(g, recipe, classifier, images, n=600, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "scoring" in err and "2400/2400" in err
    evaluate_generator(g, recipe, classifier, images, n=600, progress=False)
    assert capsys.readouterr().err == ""
