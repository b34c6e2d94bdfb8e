"""The five tutorial GANs by name (their sources, networks and recipes: docs/tutorials.md).

``build(name, seed)`` returns ``(generator, discriminator, recipe)``. The networks are
plain :class:`~scratchgan.models.Sequential` stacks of scratchgan layers, with the
tutorial's layer sizes, so ``summary()`` reports Keras's parameter counts (batch-norm
moving statistics included). The :class:`Recipe` holds everything else the tutorial
decides: latent size and distribution, data scaling, batch size, optimizers, label
convention and noise, how D sees real and fake images, and the default data.

=================  ==========  ==========  =====================================
name               G params    D params    data
=================  ==========  ==========  =====================================
mlp                   114,064     100,609  MNIST 28x28x1
dcgan_bn            2,343,681     213,633  MNIST 28x28x1
dcgan_upsample      6,763,777  13,315,841  MNIST 28x28x1
dcgan               1,164,289      40,705  MNIST 28x28x1
cifar_frog          6,264,579     790,913  CIFAR-10 class frog, 32x32x3
=================  ==========  ==========  =====================================
"""
from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field, fields, replace

from . import optimizers
from .layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPooling2D,
    Reshape,
    UpSampling2D,
)
from .models import Sequential

#: how the discriminator sees a batch of real and a batch of fake images
D_MODES = ("separate", "sum", "concat")
#: how real batches are drawn from the data
DATA_ORDERS = ("random", "shuffle", "sequential")
#: the optimizers a recipe can name
OPTIMIZERS = ("Adam", "SGD", "RMSprop")
#: fields that are the model itself, not how it is trained
FIXED_FIELDS = ("model", "image_shape")


@dataclass
class Recipe:
    """How a tutorial trains its GAN. Every field can be overridden from the command line.

    d_mode     "separate": two D updates per iteration (real batch, then fake batch),
                           as two Keras train_on_batch calls;
               "sum":      one D update on loss(real) + loss(fake), each batch through D
                           on its own (batch-norm statistics per batch), as a TF2 tape;
               "concat":   one D update on the real and fake batches stacked together.
    d_half_batch   D sees batch_size/2 real + batch_size/2 fake (Brownlee's dcgan);
                   otherwise batch_size of each.
    real_label, fake_label   D's targets; G is trained towards real_label.
    label_smoothing   real targets move by this much towards fake_label (one-sided).
    label_noise       U(0, label_noise) added to every D target (cifar_frog's 0.05).
    fake_training_mode   G runs in training mode (batch-norm batch statistics) when it
                         makes D's fake batch; False is Keras's predict().
    data_order   "random": each batch drawn uniformly (with replacement across batches);
                 "shuffle": a new permutation every epoch; "sequential": in file order.
    """

    model: str
    z_dim: int = 100
    latent: str = "normal"  # "normal": N(0, 1); "uniform": U(-1, 1)
    data: str = "mnist"
    data_range: tuple = (-1.0, 1.0)  # images are scaled to this range (G's output range)
    image_shape: tuple = (28, 28, 1)
    batch_size: int = 128
    iterations: int = 20000
    sample_interval: int = 1000
    d_steps: int = 1
    d_mode: str = "separate"
    d_half_batch: bool = False
    real_label: float = 1.0
    fake_label: float = 0.0
    label_smoothing: float = 0.0
    label_noise: float = 0.0
    fake_training_mode: bool = False
    data_order: str = "random"
    d_optimizer: dict = field(default_factory=lambda: {"name": "Adam"})
    g_optimizer: dict = field(default_factory=lambda: {"name": "Adam"})

    def __post_init__(self):
        self.validate()

    def validate(self):
        def need(ok, what):
            if not ok:
                raise ValueError(f"recipe {self.model!r}: {what}")

        need(self.latent in ("normal", "uniform"), f"latent must be 'normal' or 'uniform', got {self.latent!r}")
        need(self.d_mode in D_MODES, f"d_mode must be one of {', '.join(D_MODES)}, got {self.d_mode!r}")
        need(self.data_order in DATA_ORDERS, f"data_order must be one of {', '.join(DATA_ORDERS)}, got {self.data_order!r}")
        for name in ("z_dim", "batch_size", "iterations", "sample_interval", "d_steps"):
            need(int(getattr(self, name)) >= 1, f"{name} must be a positive integer, got {getattr(self, name)!r}")
        need(not self.d_half_batch or self.batch_size >= 2, "d_half_batch needs batch_size >= 2")
        need(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        need(0 <= self.label_noise < 1, f"label_noise must be in [0, 1), got {self.label_noise}")
        for name in ("real_label", "fake_label"):  # targets of a binary cross-entropy
            value = getattr(self, name)
            need(_finite(value) and 0 <= value <= 1, f"{name} must be a number in [0, 1], got {value!r}")
        need(self.real_label != self.fake_label, "real_label and fake_label must differ")
        need(len(self.data_range) == 2 and all(_finite(v) for v in self.data_range),
             f"data_range must be two finite numbers (low, high), got {self.data_range}")
        lo, hi = self.data_range
        need(lo < hi, f"data_range must be (low, high) with low < high, got {self.data_range}")
        for which in ("d_optimizer", "g_optimizer"):
            try:
                _build_optimizer(getattr(self, which))
            except ValueError as err:  # OptimizerError is a ValueError
                need(False, f"{which}: {err}")

    def override(self, **changes):
        """Set fields by name (None values are skipped), converting to the field's type.

        An optimizer dict is merged into the current one; naming another optimizer
        starts from that optimizer's defaults. All or nothing: an invalid value raises
        and leaves the recipe as it was."""
        types = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        new = {}
        for name, value in changes.items():
            if value is None:
                continue
            if name not in types:
                raise KeyError(f"recipe has no field {name!r}; fields: {', '.join(types)}")
            if name.endswith("_optimizer"):
                if not isinstance(value, dict):
                    raise ValueError(f"recipe field {name} takes settings like {{\"name\": \"SGD\", \"lr\": 0.01}}, "
                                     f"got {value!r}")
                current = getattr(self, name)
                same = value.get("name", current.get("name")) == current.get("name")
                value = {**current, **value} if same else dict(value)
            elif types[name] is tuple:
                value = tuple(value)
            elif types[name] is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"recipe field {name} takes true or false, got {value!r}")
                value = value.lower() in ("true", "1")
            elif types[name] in (int, float, bool):
                value = types[name](value)
            new[name] = value
        replace(self, **new)  # builds and validates a copy first
        for name, value in new.items():
            setattr(self, name, value)
        return self

    @property
    def d_batch(self) -> int:
        """Real (and fake) images per D step."""
        return self.batch_size // 2 if self.d_half_batch else self.batch_size

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        recipe = cls(model=d["model"])
        return recipe.override(**{k: v for k, v in d.items() if k in known and k != "model"})

    def make_optimizer(self, which: str):
        return _build_optimizer(self.d_optimizer if which == "d" else self.g_optimizer)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _build_optimizer(spec: dict):
    """The optimizer a recipe's {"name": ..., setting: value} dict describes; ValueError naming what is wrong."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in OPTIMIZERS:
        raise ValueError(f"name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    takes = list(inspect.signature(getattr(optimizers, name)).parameters)
    unknown = sorted(set(spec) - set(takes))
    if unknown:
        raise ValueError(f"{name} takes {', '.join(takes)}; not {', '.join(unknown)}")
    return getattr(optimizers, name)(**spec)


def _pair(g_layers, g_input, d_layers, image_shape, seed, name):
    generator = Sequential(g_layers, input_shape=g_input, name=f"{name}_generator", seed=seed)
    discriminator = Sequential(d_layers, input_shape=image_shape, name=f"{name}_discriminator",
                               seed=None if seed is None else seed + 1)
    return generator, discriminator


def mlp(seed=None, z_dim=100):
    """The dense GAN of a Keras digit-generation blog post, on MNIST. G 114,064 params, D 100,609; Adam (Keras defaults) for both."""
    adam = {"name": "Adam", "lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    g, d = _pair(
        [Dense(128), LeakyReLU(0.01), Dense(28 * 28, activation="tanh"), Reshape((28, 28, 1))], (z_dim,),
        [Flatten(), Dense(128), LeakyReLU(0.01), Dense(1, activation="sigmoid")], (28, 28, 1),
        seed, "mlp",
    )
    return g, d, Recipe(model="mlp", z_dim=z_dim, d_optimizer=dict(adam), g_optimizer=dict(adam))


def dcgan_bn(seed=None, z_dim=100):
    """TensorFlow 2's DCGAN tutorial, with batch norm in G and D. G 2,343,681 params, D 213,633; Adam(2e-4, 0.5)."""
    g, d = _pair(
        [Dense(7 * 7 * 256, activation="relu"), BatchNormalization(), Reshape((7, 7, 256)),
         Conv2DTranspose(128, 5, strides=1, padding="same"), BatchNormalization(), LeakyReLU(0.2),
         Conv2DTranspose(64, 5, strides=2, padding="same"), BatchNormalization(), LeakyReLU(0.2),
         Conv2DTranspose(1, 5, strides=2, padding="same"), Activation("tanh")], (z_dim,),
        [Conv2D(64, 5, strides=2, padding="same"), LeakyReLU(0.2), BatchNormalization(),
         Conv2D(128, 5, strides=2, padding="same"), LeakyReLU(0.2), BatchNormalization(),
         Flatten(), Dense(1, activation="sigmoid")], (28, 28, 1),
        seed, "dcgan_bn",
    )
    adam = {"name": "Adam", "lr": 2e-4, "beta_1": 0.5}
    recipe = Recipe(model="dcgan_bn", z_dim=z_dim, batch_size=256, iterations=11750, sample_interval=200,
                    d_mode="sum", fake_training_mode=True, data_order="shuffle",
                    d_optimizer=dict(adam), g_optimizer=dict(adam))
    return g, d, recipe


def dcgan_upsample(seed=None, z_dim=100):
    """A Keras course project's upsampling + tanh + max-pool DCGAN (keras-dcgan). G 6,763,777 params, D 13,315,841; SGD Nesterov."""
    g, d = _pair(
        [Dense(1024), Activation("tanh"), Dense(128 * 7 * 7), BatchNormalization(), Activation("tanh"),
         Reshape((7, 7, 128)), UpSampling2D(2), Conv2D(64, 5, padding="same"), Activation("tanh"),
         UpSampling2D(2), Conv2D(1, 5, padding="same"), Activation("tanh")], (z_dim,),
        [Conv2D(64, 5, padding="same"), Activation("tanh"), MaxPooling2D(2),
         Conv2D(128, 5, padding="valid"), Activation("tanh"), Flatten(),
         Dense(1024), Activation("tanh"), Dense(1), Activation("sigmoid")], (28, 28, 1),
        seed, "dcgan_upsample",
    )
    sgd = {"name": "SGD", "lr": 1e-3, "momentum": 0.9, "nesterov": True}
    # the tutorial loops 30 epochs over the 60,000 training images: 30 * (60,000 // 128) = 14,040 batches
    recipe = Recipe(model="dcgan_upsample", z_dim=z_dim, latent="uniform", batch_size=128, iterations=14040,
                    sample_interval=100, d_mode="concat", data_order="sequential",
                    d_optimizer=dict(sgd), g_optimizer=dict(sgd))
    return g, d, recipe


def dcgan(seed=None, z_dim=100):
    """Jason Brownlee's MNIST DCGAN (strided transposed convs, dropout). G 1,164,289, D 40,705."""
    g, d = _pair(
        [Dense(128 * 7 * 7), LeakyReLU(0.2), Reshape((7, 7, 128)),
         Conv2DTranspose(128, 4, strides=2, padding="same"), LeakyReLU(0.2),
         Conv2DTranspose(128, 4, strides=2, padding="same"), LeakyReLU(0.2),
         Conv2D(1, 7, padding="same", activation="sigmoid")], (z_dim,),
        [Conv2D(64, 3, strides=2, padding="same"), LeakyReLU(0.2), Dropout(0.4),
         Conv2D(64, 3, strides=2, padding="same"), LeakyReLU(0.2), Dropout(0.4),
         Flatten(), Dense(1, activation="sigmoid")], (28, 28, 1),
        seed, "dcgan",
    )
    adam = {"name": "Adam", "lr": 2e-4, "beta_1": 0.5}
    recipe = Recipe(model="dcgan", z_dim=z_dim, data_range=(0.0, 1.0), batch_size=256, iterations=23400,
                    sample_interval=234, d_mode="concat", d_half_batch=True,
                    d_optimizer=dict(adam), g_optimizer=dict(adam))
    return g, d, recipe


def cifar_frog(seed=None, z_dim=32):
    """François Chollet's CIFAR-10 frog GAN ("Deep Learning with Python", 8.5). G 6,264,579 params, D 790,913; RMSprop with clipping.

    The book scales data to [0, 1] although G ends in tanh; we use [-1, 1], tanh's range."""
    g, d = _pair(
        [Dense(128 * 16 * 16), LeakyReLU(), Reshape((16, 16, 128)),
         Conv2D(256, 5, padding="same"), LeakyReLU(),
         Conv2DTranspose(256, 4, strides=2, padding="same"), LeakyReLU(),
         Conv2D(256, 5, padding="same"), LeakyReLU(),
         Conv2D(256, 5, padding="same"), LeakyReLU(),
         Conv2D(3, 7, padding="same", activation="tanh")], (z_dim,),
        [Conv2D(128, 3), LeakyReLU(),
         Conv2D(128, 4, strides=2), LeakyReLU(),
         Conv2D(128, 4, strides=2), LeakyReLU(),
         Conv2D(128, 4, strides=2), LeakyReLU(),
         Flatten(), Dropout(0.4), Dense(1, activation="sigmoid")], (32, 32, 3),
        seed, "cifar_frog",
    )
    recipe = Recipe(model="cifar_frog", z_dim=z_dim, data="cifar10:frog", image_shape=(32, 32, 3),
                    batch_size=20, iterations=10000, sample_interval=100, d_mode="concat",
                    real_label=0.0, fake_label=1.0, label_noise=0.05, data_order="sequential",
                    d_optimizer={"name": "RMSprop", "lr": 8e-4, "clipvalue": 1.0, "decay": 1e-8},
                    g_optimizer={"name": "RMSprop", "lr": 4e-4, "clipvalue": 1.0, "decay": 1e-8})
    return g, d, recipe


MODELS = {"mlp": mlp, "dcgan_bn": dcgan_bn, "dcgan_upsample": dcgan_upsample, "dcgan": dcgan,
          "cifar_frog": cifar_frog}


def build(name: str, seed=None, z_dim=None):
    """(generator, discriminator, recipe) of zoo model ``name`` (z_dim: the recipe's unless given)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}: available models are {', '.join(MODELS)}")
    return MODELS[name](seed=seed) if z_dim is None else MODELS[name](seed=seed, z_dim=int(z_dim))
