"""Drawing from a trained generator beyond plain samples: the best of many, and walks.

``nicest`` is the trick of the Keras DCGAN-with-upsampling tutorial (docs/tutorials.md,
``dcgan_upsample``): draw many samples, let the discriminator score them, keep the ones
it rates most real. ``interpolate`` walks through a sequence of latent points, one leg
per pair of neighbours; for z ~ N(0, 1) it walks along a great circle (spherical interpolation), which
keeps |z| near the typical norm sqrt(z_dim) that G saw in training, where a straight
line would pass through the improbable region near 0.
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError
from .xp import to_host


def realness(D, recipe, images, batch: int = 500):
    """D's belief that each image is real, in [0, 1], whatever the recipe's label convention."""
    p = to_host(D.predict(images, batch_size=batch))[:, 0]
    return p if recipe.real_label > recipe.fake_label else 1.0 - p


def nicest(G, D, recipe, z, n: int):
    """(z of the n samples D rates most real, their scores), best first."""
    if n > len(z):
        raise UsageError(f"asked for the best {n} of only {len(z)} draws")
    images = G.predict(z, batch_size=500)  # stays on the GPU for D on the cupy backend
    scores = realness(D, recipe, images)
    best = np.argsort(-scores, kind="stable")[:n]
    return z[best], scores[best]


def slerp(a, b, t):
    """Spherical interpolation between rows a and b (shape (d,)) at fraction t in [0, 1]."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolate(points, steps: int, spherical: bool = True):
    """Rows of ``steps`` latent vectors from points[k] to points[k+1]: (len(points)-1)*steps rows."""
    points = np.asarray(points)
    if len(points) < 2 or steps < 2:
        raise UsageError(f"need at least 2 latent points and 2 steps, got {len(points)} and {steps}")
    ts = np.linspace(0.0, 1.0, steps)
    walk = [slerp(a, b, t) if spherical else (1 - t) * a + t * b
            for a, b in zip(points[:-1], points[1:]) for t in ts]
    return np.asarray(walk, dtype=points.dtype)
