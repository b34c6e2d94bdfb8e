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

from . import budget, optimizers
from .errors import ScratchganError
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
#: the largest value of each count a recipe holds (a sanity bound; memory is checked separately)
LARGEST = {"z_dim": 1 << 20, "batch_size": 1 << 24, "iterations": 2**63 - 1, "sample_interval": 2**63 - 1, "d_steps": 1000}


class RecipeError(ScratchganError, ValueError):
    """A recipe with a field of the wrong type or out of range."""


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
                raise RecipeError(f"recipe {self.model!r}: {what}")

        need(self.latent in ("normal", "uniform"), f"latent must be 'normal' or 'uniform', got {self.latent!r}")
        need(self.d_mode in D_MODES, f"d_mode must be one of {', '.join(D_MODES)}, got {self.d_mode!r}")
        need(self.data_order in DATA_ORDERS, f"data_order must be one of {', '.join(DATA_ORDERS)}, got {self.data_order!r}")
        for name, largest in LARGEST.items():
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= largest,
                 f"{name} must be an integer from 1 to {largest:,}, got {value!r}")
        need(isinstance(self.model, str) and self.model in MODELS, f"model must be one of {', '.join(MODELS)}")
        need(isinstance(self.data, str) and 0 < len(self.data) <= 4096, f"data must be a data source name or path, "
                                                                         f"got {self.data!r}")
        need(tuple(self.image_shape) == MODEL_IMAGE_SHAPES.get(self.model, tuple(self.image_shape)),
             f"image_shape is the model's own, {MODEL_IMAGE_SHAPES.get(self.model)}, got {self.image_shape!r}")
        for name in ("d_half_batch", "fake_training_mode"):
            need(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")
        need(not self.d_half_batch or self.batch_size >= 2, "d_half_batch needs batch_size >= 2")
        for name in ("label_smoothing", "label_noise"):
            value = getattr(self, name)
            need(_finite(value) and 0 <= value < 1, f"{name} must be a number in [0, 1), got {value!r}")
        for name in ("real_label", "fake_label"):  # targets of a binary cross-entropy
            value = getattr(self, name)
            need(_finite(value) and 0 <= value <= 1, f"{name} must be a number in [0, 1], got {value!r}")
        need(self.real_label != self.fake_label, "real_label and fake_label must differ")
        need(isinstance(self.data_range, tuple) and len(self.data_range) == 2 and all(_finite(v) for v in self.data_range),
             f"data_range must be two finite numbers (low, high), got {self.data_range}")
        lo, hi = self.data_range
        need(lo < hi, f"data_range must be (low, high) with low < high, got {self.data_range}")
        for which in ("d_optimizer", "g_optimizer"):
            try:
                _build_optimizer(getattr(self, which))
            except (ValueError, TypeError) as err:  # OptimizerError is a ValueError
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
                raise RecipeError(f"recipe has no field {name!r}; fields: {', '.join(types)}")
            new[name] = _converted(name, value, types[name], getattr(self, name))
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
        if not isinstance(d, dict) or not isinstance(d.get("model"), str) or d["model"] not in MODELS:
            raise RecipeError(f"a recipe is a JSON object naming one of the models {', '.join(MODELS)}")
        known = {f.name for f in fields(cls)}
        recipe = cls(model=d["model"], image_shape=MODEL_IMAGE_SHAPES[d["model"]])
        return recipe.override(**{k: v for k, v in d.items() if k in known and k != "model"})

    def make_optimizer(self, which: str):
        return _build_optimizer(self.d_optimizer if which == "d" else self.g_optimizer)


def _converted(name, value, kind, current):
    """A recipe field's new ``value`` as the field's ``kind`` (int, float, bool, tuple, dict);
    RecipeError naming the field if it cannot be."""
    try:
        if name.endswith("_optimizer"):
            if not isinstance(value, dict):
                raise RecipeError(f"recipe field {name} takes settings like {{\"name\": \"SGD\", \"lr\": 0.01}}, "
                                  f"got {value!r}")
            same = value.get("name", current.get("name")) == current.get("name")
            return {**current, **value} if same else dict(value)
        if kind is tuple:
            if not isinstance(value, (list, tuple)):
                raise RecipeError(f"recipe field {name} takes a list, got {value!r}")
            return tuple(value)
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise RecipeError(f"recipe field {name} takes true or false, got {value!r}")
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise RecipeError(f"recipe field {name} takes an integer, got {value!r}")
            return int(value)
        if kind is float:
            return float(value)
        if kind is str and not isinstance(value, str):
            raise RecipeError(f"recipe field {name} takes text, got {value!r}")
        return value
    except (TypeError, ValueError, OverflowError) as err:
        if isinstance(err, RecipeError):
            raise
        raise RecipeError(f"recipe field {name}: {value!r} is not a {kind.__name__} ({err})") from None


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


def mlp(seed=None, z_dim=100, world=None):
    """The dense GAN of a Keras digit-generation blog post, on MNIST. G 114,064 params, D 100,609; Adam (Keras defaults) for both."""
    adam = {"name": "Adam", "lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    g, d = _pair(
        [Dense(128), LeakyReLU(0.01), Dense(28 * 28, activation="tanh"), Reshape((28, 28, 1))], (z_dim,),
        [Flatten(), Dense(128), LeakyReLU(0.01), Dense(1, activation="sigmoid")], (28, 28, 1),
        seed, "mlp",
    )
    return g, d, Recipe(model="mlp", z_dim=z_dim, d_optimizer=dict(adam), g_optimizer=dict(adam))


def dcgan_bn(seed=None, z_dim=100, world=None):
    """TensorFlow 2's DCGAN tutorial, with batch norm in G and D. G 2,343,681 params, D 213,633; Adam(2e-4, 0.5)."""
    g, d = _pair(
        [Dense(7 * 7 * 256, activation="relu"), BatchNormalization(sync=world), Reshape((7, 7, 256)),
         Conv2DTranspose(128, 5, strides=1, padding="same"), BatchNormalization(sync=world), LeakyReLU(0.2),
         Conv2DTranspose(64, 5, strides=2, padding="same"), BatchNormalization(sync=world), LeakyReLU(0.2),
         Conv2DTranspose(1, 5, strides=2, padding="same"), Activation("tanh")], (z_dim,),
        [Conv2D(64, 5, strides=2, padding="same"), LeakyReLU(0.2), BatchNormalization(sync=world),
         Conv2D(128, 5, strides=2, padding="same"), LeakyReLU(0.2), BatchNormalization(sync=world),
         Flatten(), Dense(1, activation="sigmoid")], (28, 28, 1),
        seed, "dcgan_bn",
    )
    adam = {"name": "Adam", "lr": 2e-4, "beta_1": 0.5}
    recipe = Recipe(model="dcgan_bn", z_dim=z_dim, batch_size=256, iterations=11750, sample_interval=200,
                    d_mode="sum", fake_training_mode=True, data_order="shuffle",
                    d_optimizer=dict(adam), g_optimizer=dict(adam))
    return g, d, recipe


def dcgan_upsample(seed=None, z_dim=100, world=None):
    """A Keras course project's upsampling + tanh + max-pool DCGAN (keras-dcgan). G 6,763,777 params, D 13,315,841; SGD Nesterov."""
    g, d = _pair(
        [Dense(1024), Activation("tanh"), Dense(128 * 7 * 7), BatchNormalization(sync=world), Activation("tanh"),
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


def dcgan(seed=None, z_dim=100, world=None):
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


def cifar_frog(seed=None, z_dim=32, world=None):
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


#: every builder takes (seed, z_dim, world): world is the ranks of data-parallel training,
#: which the batch normalisation of dcgan_bn and dcgan_upsample synchronises over
MODELS = {"mlp": mlp, "dcgan_bn": dcgan_bn, "dcgan_upsample": dcgan_upsample, "dcgan": dcgan,
          "cifar_frog": cifar_frog}


#: the image shape each model is built for (a recipe cannot change it)
MODEL_IMAGE_SHAPES = {"mlp": (28, 28, 1), "dcgan_bn": (28, 28, 1), "dcgan_upsample": (28, 28, 1),
                      "dcgan": (28, 28, 1), "cifar_frog": (32, 32, 3)}


def build(name: str, seed=None, z_dim=None, world=None):
    """(generator, discriminator, recipe) of zoo model ``name`` (z_dim: the recipe's unless given).
    The memory the weights need is checked against the budget before any is allocated.
    ``world`` (data-parallel training over several ranks) builds batch normalisation whose
    statistics span the ranks' shares of each batch (scratchgan/distributed.py)."""
    if name not in MODELS:
        raise RecipeError(f"unknown model {name!r}: available models are {', '.join(MODELS)}")
    sync = world if world is not None and world.size > 1 else None
    if z_dim is None:
        return MODELS[name](seed=seed, world=sync)
    if isinstance(z_dim, bool) or not isinstance(z_dim, int) or not 1 <= z_dim <= LARGEST["z_dim"]:
        raise RecipeError(f"z_dim must be an integer from 1 to {LARGEST['z_dim']:,}, got {z_dim!r}")
    budget.require(weight_count(name, z_dim) * 4, f"the {name} model with z_dim {z_dim:,}", "--z-dim")
    return MODELS[name](seed=seed, z_dim=z_dim, world=sync)


_SIZES: dict = {}
_RECIPES: dict = {}


def default_recipe(name: str):
    """A fresh copy of zoo model ``name``'s tutorial recipe, without building its full-size weights."""
    if name not in MODELS:
        raise RecipeError(f"unknown model {name!r}: available models are {', '.join(MODELS)}")
    _sizes(name)
    z_dim = inspect.signature(MODELS[name]).parameters["z_dim"].default
    return Recipe.from_dict({**_RECIPES[name].to_dict(), "z_dim": z_dim})


def _sizes(name: str):
    """(weights at z_dim 1, weights per latent unit, activation values per image) of a model,
    measured once on a z_dim 1 and a z_dim 2 build (the first layer's weights grow
    linearly with z_dim; nothing else depends on it)."""
    if name not in _SIZES:
        g1, d1, _RECIPES[name] = MODELS[name](z_dim=1)
        g2, _, _ = MODELS[name](z_dim=2)
        base = g1.count_params() + d1.count_params()  # batch-norm moving statistics included
        per_z = g2.count_params() - g1.count_params()
        per_image = sum(math.prod(layer.output_shape[1:]) for model in (g1, d1) for layer in model.layers)
        _SIZES[name] = (base, per_z, per_image)
    return _SIZES[name]


def weight_count(name: str, z_dim: int) -> int:
    """Parameters and buffers of zoo model ``name`` built with ``z_dim``, without building it."""
    base, per_z, _ = _sizes(name)
    return base + (z_dim - 1) * per_z


def training_bytes(recipe) -> int:
    """About the memory a training run of ``recipe`` needs in float32: the weights four times
    (weights, gradients, two optimizer moments) and every layer's output of G and D for
    twice the batch (D sees real and fake; dcgan at batch 256: 626 MB estimated, 514 MB
    measured peak)."""
    _, _, per_image = _sizes(recipe.model)
    return 4 * (4 * weight_count(recipe.model, recipe.z_dim) + 2 * recipe.batch_size * per_image)


def require_training_memory(recipe) -> None:
    """BudgetError unless a training run of ``recipe`` fits the memory budget."""
    budget.require(training_bytes(recipe), f"training {recipe.model} at batch size {recipe.batch_size:,} "
                                           f"with z_dim {recipe.z_dim:,}", "--batch-size or --z-dim")
