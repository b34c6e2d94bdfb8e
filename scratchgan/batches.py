"""What one training iteration draws: real images, latent vectors and D's targets.

Every draw comes from one NumPy generator, ``rng = default_rng([seed, 1])``, in a fixed
order, so a run is a pure function of its seed and every backend draws the same numbers.
In data-parallel training every rank makes the draws of the whole (global) batch and
keeps its own rows (a :class:`~scratchgan.distributed.Share`), so N ranks see what one
process sees.

Data orders (the recipe's ``data_order``):

    random       n indices drawn with replacement for every batch (most tutorials)
    shuffle      epochs of a permutation that is a pure function of (seed, epoch)
    sequential   the data in its stored order, batch after batch, wrapping around
"""
from __future__ import annotations

import math

import numpy as np

from .distributed import SINGLE
from .errors import TrainingError
from .xp import like


def scale_images(images_uint8, data_range, image_shape):
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, H, W, C) in ``data_range``."""
    x = np.asarray(images_uint8)
    if x.ndim == 3:
        x = x[..., None]
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise TrainingError(f"data images have shape {x.shape[1:]}, the model expects {tuple(image_shape)}")
    lo, hi = data_range
    return (x.astype(np.float32) / np.float32(255.0)) * np.float32(hi - lo) + np.float32(lo)


def sample_latent(rng, n: int, recipe):
    """z of shape (n, z_dim), float32: N(0, 1), or U(-1, 1) for recipes with latent="uniform"."""
    shape = (n, recipe.z_dim)
    if recipe.latent == "uniform":
        return rng.uniform(-1, 1, shape).astype(np.float32)
    return standard_normal(rng, shape)


def standard_normal(rng, shape):
    """float32 N(0, 1) draws by the Box-Muller transform of ``rng``'s float32 uniforms:

        r = sqrt(-2 ln u1),  z = (r cos(2 pi u2), r sin(2 pi u2)),  u1 in (0, 1], u2 in [0, 1)

    two independent normals per pair of uniforms. NumPy's own float32 normals (a ziggurat,
    one number at a time) took 106-116 us for the mlp's 128x100 latents, this 50 us
    (docs/performance.md gives the command). u1 = 1 - u is a multiple of 2^-24, so
    |z| <= sqrt(48 ln 2) = 5.77: the normal's tails beyond that, 8e-9 of its mass, are
    never drawn."""
    size = math.prod(shape)
    half = (size + 1) // 2
    u = rng.random(2 * half, dtype=np.float32)
    r = np.log(np.float32(1) - u[:half])
    r *= np.float32(-2)
    np.sqrt(r, out=r)
    angle = u[half:]
    angle *= np.float32(2 * np.pi)
    z = np.empty(2 * half, np.float32)
    np.multiply(r, np.cos(angle), out=z[:half])
    np.multiply(r, np.sin(angle), out=z[half:])
    return z[:size].reshape(shape)


class BatchSource:
    """Real batches, latents and targets for one rank; ``data`` lives where the model does
    (on the cupy backend the whole dataset moves to the GPU once and batches are cut there)."""

    def __init__(self, data, recipe, seed: int, world=SINGLE):
        self.data, self.recipe, self.seed, self.world = data, recipe, int(seed), world
        self.rng = np.random.default_rng([self.seed, 1])
        self._permutation = None  # (epoch, permutation) of the "shuffle" order
        self._labels = {}  # (n_real, n_fake, dtype) -> D's noiseless targets, where the data lives

    def split(self, *halves: int):
        """This rank's share of a batch made of ``halves`` (real, fake) rows."""
        return self.world.split(*halves)

    def real(self, n: int, draw: int):
        """This rank's rows of the ``draw``-th real batch of n images."""
        order, count = self.recipe.data_order, len(self.data)
        if order == "random":
            index = self.rng.integers(0, count, n)
        else:
            per_epoch = max(count // n, 1)
            epoch, j = divmod(draw, per_epoch)
            index = np.arange(j * n, (j + 1) * n) % count
            if order == "shuffle":
                index = self._epoch_permutation(epoch)[index]
        return self.data[self._here(self.split(n).take(index))]

    def latent(self, n: int):
        """This rank's rows of n latent vectors (all n drawn, so every rank draws alike)."""
        return self._here(self.split(n).take(sample_latent(self.rng, n, self.recipe)))

    def targets(self, n_real: int, n_fake: int, dtype):
        """This rank's rows of D's targets, shape (rows, 1): the real label (one-sided
        smoothing towards the fake label) for the real rows, the fake label for the fake
        ones, plus U(0, label_noise) drawn for every row."""
        r = self.recipe
        key = (n_real, n_fake, np.dtype(dtype))
        labels = self._labels.get(key)
        if labels is None:  # built once per shape (and moved to the GPU once there)
            real = r.real_label + r.label_smoothing * (r.fake_label - r.real_label)
            labels = np.concatenate([np.full(n_real, real), np.full(n_fake, r.fake_label)]).astype(dtype)[:, None]
            labels = self._labels[key] = self._here(labels)
        if r.label_noise:
            labels = labels + self._here((r.label_noise * self.rng.random(labels.shape)).astype(dtype))
        return self.split(n_real, n_fake).take(labels)

    def _here(self, host_array):
        """A host array moved to where the data lives (a small copy to the GPU on cupy)."""
        return like(host_array, self.data)

    def _epoch_permutation(self, epoch: int):
        """A permutation per epoch, a pure function of (seed, epoch): resuming needs no state."""
        if self._permutation is None or self._permutation[0] != epoch:
            rng = np.random.default_rng([self.seed, 3, epoch])
            self._permutation = (epoch, rng.permutation(len(self.data)))
        return self._permutation[1]
