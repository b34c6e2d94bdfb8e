"""The tutorial models by name: each returns (generator, discriminator, recipe).

Only ``mlp`` (seed 000) is here so far; the other four models of
docs/seed-models.md arrive with the model-zoo issue.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import optimizers
from .layers import Dense, Flatten, LeakyReLU, Reshape
from .models import Sequential


@dataclass
class Recipe:
    """How a tutorial trains its GAN."""

    model: str
    z_dim: int = 100
    latent: str = "normal"  # "normal": N(0, 1); "uniform": U(-1, 1)
    data_range: tuple = (-1.0, 1.0)  # images are scaled to this range (G's output range)
    image_shape: tuple = (28, 28, 1)
    batch_size: int = 128
    iterations: int = 20000
    sample_interval: int = 1000
    d_optimizer: dict = field(default_factory=lambda: {"name": "Adam"})
    g_optimizer: dict = field(default_factory=lambda: {"name": "Adam"})

    def to_dict(self):
        return asdict(self)

    def make_optimizer(self, which: str):
        spec = dict(self.d_optimizer if which == "d" else self.g_optimizer)
        return getattr(optimizers, spec.pop("name"))(**spec)


def mlp(seed=None):
    """Seed 000: dense GAN on MNIST. G 114,064 params, D 100,609; Adam (Keras defaults) for both."""
    generator = Sequential(
        [Dense(128), LeakyReLU(0.01), Dense(28 * 28, activation="tanh"), Reshape((28, 28, 1))],
        input_shape=(100,), name="generator", seed=seed,
    )
    discriminator = Sequential(
        [Flatten(), Dense(128), LeakyReLU(0.01), Dense(1, activation="sigmoid")],
        input_shape=(28, 28, 1), name="discriminator", seed=None if seed is None else seed + 1,
    )
    recipe = Recipe(
        model="mlp",
        d_optimizer={"name": "Adam", "lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
        g_optimizer={"name": "Adam", "lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    )
    return generator, discriminator, recipe


MODELS = {"mlp": mlp}


def build(name: str, seed=None):
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}: available models are {', '.join(MODELS)}")
    return MODELS[name](seed=seed)
