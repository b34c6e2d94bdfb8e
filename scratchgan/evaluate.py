"""Scoring an MNIST-like generator without a framework: ``scratchgan evaluate CHECKPOINT``.

Three numbers from a classifier of scratchgan's own layers (:mod:`scratchgan.classifier`):

- **Fréchet distance** between the classifier's 64 features of generated and of real
  images, each set summarised by its mean mu and covariance S (the FID recipe, with our
  classifier in place of Inception)::

      FD = |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_r^1/2 S_g S_r^1/2)^1/2)

  The square root of a symmetric positive semi-definite matrix comes from its
  eigendecomposition (numpy.linalg.eigh), so no SciPy is needed. Lower is better; the
  distance between two disjoint halves of the real data, of the same size, is the floor.
- **confidence**: the classifier's mean top-class probability on generated images
  (clear digits score near its confidence on real ones; blobs score low).
- **coverage**: the share of generated images in each class, and its evenness, the
  entropy of those shares over log(10): 1 when all ten digits are equally common,
  0 when the generator makes one digit only (mode collapse).
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .batches import sample_latent
from .classifier import features_and_probabilities
from .datasets.catalog import parse_spec
from .errors import UsageError
from .images import to_unit_range


def psd_sqrt(matrix):
    """The symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a, features_b) -> float:
    """FD between Gaussians fitted to two feature sets (N, d), float64."""
    mu_a, mu_b = features_a.mean(axis=0), features_b.mean(axis=0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    root_b = psd_sqrt(cov_b)
    cross = psd_sqrt(root_b @ cov_a @ root_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross))


def coverage(probabilities, classes: int = 10):
    """(share of images per predicted class, evenness in [0, 1])."""
    shares = np.bincount(probabilities.argmax(axis=1), minlength=classes) / len(probabilities)
    nonzero = shares[shares > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    return shares, max(0.0, entropy / np.log(classes))  # one class: -0.0 would print as "-0.000"


def score(classifier, generated, real_a, real_b, tick=None) -> dict:
    """Scores of ``generated`` against ``real_a``, and of ``real_b`` against ``real_a`` (the floor).
    Images (N, 28, 28, 1) in [0, 1]; ``tick(k)`` is told of every k images classified."""
    gen_f, gen_p = features_and_probabilities(classifier, generated, tick=tick)
    a_f, _ = features_and_probabilities(classifier, real_a, tick=tick)
    b_f, b_p = features_and_probabilities(classifier, real_b, tick=tick)
    shares, evenness = coverage(gen_p)
    real_shares, real_evenness = coverage(b_p)
    return {
        "frechet_distance": frechet_distance(gen_f, a_f),
        "frechet_distance_real": frechet_distance(b_f, a_f),
        "confidence": float(gen_p.max(axis=1).mean()),
        "confidence_real": float(b_p.max(axis=1).mean()),
        "class_shares": [round(float(s), 4) for s in shares],
        "evenness": evenness,
        "evenness_real": real_evenness,
        "samples": len(generated),
    }


def generate(G, recipe, n: int, seed: int, tick=None, batch: int = 500):
    """n images from G in [0, 1], drawn in batches; ``tick(k)`` is told of every k made."""
    z = sample_latent(np.random.default_rng(seed), n, recipe)
    parts = []
    for i in range(0, n, batch):
        parts.append(to_unit_range(G.predict(z[i:i + batch], batch_size=batch), recipe.data_range))
        if tick:
            tick(len(parts[-1]))
    return np.concatenate(parts) if parts else np.empty((0, *recipe.image_shape), np.float32)


#: fewest generated images a score is computed from (a covariance needs more samples than one)
MIN_SAMPLES = 10


def evaluate_generator(G, recipe, classifier, real_images, n: int = 5000, seed: int = 0, progress=False) -> dict:
    """Score G on n samples against the first half of ``real_images`` (uint8 or [0, 1] floats),
    with the second half as the real-versus-real floor; n is capped at half the real images
    so both distances use samples of the same size. ``progress``: a bar on stderr (images
    made, then classified); None shows it only on a terminal."""
    if tuple(recipe.image_shape) != (28, 28, 1):
        shape = "x".join(map(str, recipe.image_shape))
        raise UsageError(f"evaluate scores 28x28x1 (MNIST-like) generators; model {recipe.model!r} makes {shape} images")
    real = np.asarray(real_images)
    real = real.astype(np.float32) / 255.0 if real.dtype == np.uint8 else real.astype(np.float32)
    if real.ndim == 3:
        real = real[..., None]
    half = len(real) // 2
    if half < 100:
        raise UsageError(f"need at least 200 real images to score against, got {len(real)}")
    if n < MIN_SAMPLES:
        raise UsageError(f"--n {n}: a Frechet distance needs the covariance of at least {MIN_SAMPLES} samples "
                         f"(1,000 or more give stable scores; the default is 5,000)")
    n = min(n, half)
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(len(real))
    real_a, real_b = real[order[:n]], real[order[half:half + n]]
    with tqdm(total=4 * n, unit="img", desc="scoring", disable=None if progress is None else not progress,
              leave=True) as bar:  # n made, then 3 n classified
        generated = generate(G, recipe, n, seed, tick=bar.update)
        bad = int(np.count_nonzero(~np.isfinite(generated).all(axis=(1, 2, 3))))
        if bad:
            raise UsageError(f"the generator's output is not finite (NaN or infinite) for {bad} of {n} samples: "
                             f"its weights have diverged, so there is nothing to score")
        return score(classifier, generated, real_a, real_b, tick=bar.update)


#: --data names that denote one set of images: MNIST's test set (embedded) and its training set
_SAME_IMAGES = {"embedded": "mnist", "mnist-full": "mnist"}


def applicability(trained_on: str, classes, compared_with: str) -> str | None:
    """None when scores against ``compared_with`` measure a generator trained on ``trained_on``
    (with the ``classes`` filter, or None); else the sentence that says why they do not."""
    (trained, spec_classes), (compared, _) = parse_spec(str(trained_on)), parse_spec(str(compared_with))
    classes = [*(classes or ()), *spec_classes]  # "cifar10:frog" is cifar10 with --class frog
    if _SAME_IMAGES.get(trained, trained) != _SAME_IMAGES.get(compared, compared):
        return (f"this generator was trained on {trained_on}, not on {compared_with}: the scores measure how "
                f"much its images look like {compared_with}, not how well it learned its own data, so they do "
                f"not apply (unless those are the same images)")
    if classes:
        return (f"this generator was trained on the classes {', '.join(map(str, classes))} of {trained} only: "
                f"the class shares and evenness are bound to be uneven, and the distance compares it with all classes")
    return None
