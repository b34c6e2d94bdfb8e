"""The checkpoint's schema: every field checked before any array reaches a layer or kernel.

A checkpoint (``checkpoint.npz``) is a file people share, so it is input like any other.
It is read by :func:`scratchgan.safe_io.read_npz` (every member's header checked before
its data is allocated) and then checked here, field by field, against the model its
recipe builds:

=======================  =============================================================
field                    expected
=======================  =============================================================
recipe                   JSON text of a valid recipe (its sizes within the memory budget)
seed, iteration          one integer, 0 to 2^63-1
rng, G_rng/L, D_rng/L    JSON text of a PCG64 state (integers in range)
fixed_z                  float32 (16, z_dim), finite
history                  float64 (N, 5): increasing iterations in 1..iteration, finite, losses >= 0,
                         accuracy in [0, 1], seconds >= 0
G/W, D/W                 each weight and buffer of the model: its shape, float32, finite
                         (a moving variance >= 0)
opt_G/iterations         one integer, 0 to 2^62
opt_G/W/SLOT             each optimizer slot (Adam m, v; SGD velocity; RMSprop v) of a
                         parameter W: W's shape, float32, finite (v >= 0)
frames, frame_iterations uint8 (K, 16, H, W, C) sample grids for progress.gif and the
                         iteration of each, increasing, at most the checkpoint's
log_bytes                one integer: the length of log.txt when the checkpoint was written
data_source              JSON text {"data": str, "classes": [str] or null}
format                   "scratchgan-checkpoint/2" (older checkpoints have none)
=======================  =============================================================

Anything else, or anything missing, is refused with a CheckpointError naming the field
and what it should be. The Numba kernels that update arrays in place check shapes and
dtypes again (scratchgan/kernels/numba/checks.py), as a last line of defence.
"""
from __future__ import annotations

import json

import numpy as np

from . import zoo
from .errors import CheckpointError, one_line
from .safe_io import atomic_save_npz, read_npz

FORMAT = "scratchgan-checkpoint/2"
#: the columns of metrics.csv and of a trainer's history
METRICS = ("iteration", "d_loss", "d_accuracy", "g_loss", "seconds")
#: the latent vectors of the fixed sample grid
FIXED_SAMPLES = 16
LARGEST = 2**63 - 1
#: the most sample grids a checkpoint keeps for progress.gif (a long run's are thinned)
MAX_FRAMES = 240
#: the optimizer slots whose values must not be negative (second moments)
NON_NEGATIVE_SLOTS = ("v",)


def save(path, arrays: dict) -> None:
    """Write a checkpoint atomically."""
    atomic_save_npz(path, {**arrays, "format": np.array(FORMAT)})


def read(path, *, in_run: bool = False, typed: bool = False):
    """(recipe, arrays) of a checkpoint file: the archive read safely and every field that
    does not need the model checked; the recipe's sizes checked against the memory budget."""
    arrays = read_npz(path, "checkpoint", in_run=in_run, typed=typed)
    return check_fields(arrays, str(path)), arrays


def load(path, *, in_run: bool = False, typed: bool = False):
    """(generator, discriminator, recipe, arrays) rebuilt from a checkpoint, the weights
    checked against the model the recipe builds before they are set."""
    recipe, arrays = read(path, in_run=in_run, typed=typed)
    return (*build_models(recipe, arrays, str(path)), recipe, arrays)


def build_models(recipe, arrays: dict, source: str):
    """(generator, discriminator) of ``recipe`` with the checkpoint's weights, checked first."""
    G, D, _ = zoo.build(recipe.model, z_dim=recipe.z_dim)
    for prefix, model in (("G", G), ("D", D)):
        model.set_weights(check_weights(arrays, prefix, model, source), source=f"{source} ({prefix})")
    return G, D


class _Fields:
    """Checks of one checkpoint's fields, each error naming the file and the field."""

    def __init__(self, arrays: dict, source: str):
        self.arrays, self.source = arrays, one_line(source)

    def fail(self, key: str, expected: str):
        value = self.arrays.get(key)
        got = "nothing" if value is None else f"{value.dtype} of shape {value.shape}"
        raise CheckpointError(f"{self.source}: field {one_line(key)!r} should be {expected}, got {got}")

    def integer(self, key: str, low: int = 0, high: int = LARGEST) -> int:
        value = self.arrays.get(key)
        if value is None or value.shape != () or value.dtype.kind not in "iu" or not low <= int(value) <= high:
            self.fail(key, f"one integer from {low} to {high:,}")
        return int(value)

    def text(self, key: str) -> str:
        value = self.arrays.get(key)
        if value is None or value.shape != () or value.dtype.kind != "U":
            self.fail(key, "one JSON text")
        return str(value)

    def json(self, key: str):
        try:
            return json.loads(self.text(key))
        except (ValueError, RecursionError) as err:
            raise CheckpointError(f"{self.source}: field {key!r} is not valid JSON ({one_line(err, 100)})") from None

    def floats(self, key: str, shape: tuple, dtype) -> np.ndarray:
        """An array of exactly ``shape`` (None: any length) and ``dtype``, every value finite."""
        value = self.arrays.get(key)
        want = "x".join("N" if n is None else str(n) for n in shape) or "a scalar"
        if (value is None or value.dtype != np.dtype(dtype) or value.ndim != len(shape)
                or any(n is not None and n != m for n, m in zip(shape, value.shape))):
            self.fail(key, f"{np.dtype(dtype)} of shape ({want})")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError(f"{self.source}: field {key!r} holds NaN or infinite values")
        return value

    def rng_state(self, key: str) -> dict:
        """A PCG64 bit generator's state, every member of the right type and range."""
        state = self.json(key)
        inner = state.get("state") if isinstance(state, dict) else None
        ok = (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
              and state["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
              and all(_int_in(inner[k], 0, 2**128 - 1) for k in ("state", "inc"))
              and _int_in(state["has_uint32"], 0, 1) and _int_in(state["uinteger"], 0, 2**32 - 1))
        if not ok:
            raise CheckpointError(f"{self.source}: field {key!r} is not a PCG64 random generator's state")
        return state


def _int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_fields(arrays: dict, source: str):
    """The checkpoint's recipe, after checking every field that does not need the model."""
    f = _Fields(arrays, source)
    for key in ("recipe", "iteration", "rng", "seed"):
        if key not in arrays:
            raise CheckpointError(f"{f.source}: not a scratchgan training checkpoint (no {key!r} field)")
    if "format" in arrays and f.text("format") != FORMAT:
        raise CheckpointError(f"{f.source}: format {one_line(f.text('format'), 60)!r}; this version reads {FORMAT!r}")
    try:
        recipe = zoo.Recipe.from_dict(f.json("recipe"))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{f.source}: field 'recipe' is not a valid recipe ({one_line(err, 200)})") from None
    zoo.require_training_memory(recipe)
    iteration = f.integer("iteration")
    f.integer("seed")
    f.rng_state("rng")
    f.floats("fixed_z", (FIXED_SAMPLES, recipe.z_dim), np.float32)
    if "history" in arrays:
        _check_history(f, iteration)
    if "frames" in arrays or "frame_iterations" in arrays:
        _check_frames(f, recipe, iteration)
    if "log_bytes" in arrays:
        f.integer("log_bytes")
    if "data_source" in arrays:
        source = f.json("data_source")
        if not (isinstance(source, dict) and set(source) == {"data", "classes"} and isinstance(source["data"], str)
                and (source["classes"] is None or (isinstance(source["classes"], list)
                                                   and all(isinstance(c, str) for c in source["classes"])))):
            raise CheckpointError(f"{f.source}: field 'data_source' should be {{\"data\": text, \"classes\": "
                                  f"[names] or null}}")
    return recipe


def _check_history(f: _Fields, iteration: int) -> None:
    h = f.floats("history", (None, len(METRICS)), np.float64)
    it = h[:, 0]
    if len(h) > iteration or (len(h) and (it[0] < 1 or it[-1] > iteration or (np.diff(it) <= 0).any()
                                          or (it != np.round(it)).any())):
        raise CheckpointError(f"{f.source}: field 'history' should hold at most one row per iteration, "
                              f"numbered 1 to {iteration} in order")
    if (h[:, [1, 3, 4]] < 0).any() or ((h[:, 2] < 0) | (h[:, 2] > 1)).any():
        raise CheckpointError(f"{f.source}: field 'history' holds a negative loss or time, or an accuracy "
                              f"outside [0, 1]")


def _check_frames(f: _Fields, recipe, iteration: int) -> None:
    frames = f.arrays.get("frames")
    if frames is None or frames.dtype != np.uint8 or frames.shape[1:] != (FIXED_SAMPLES, *recipe.image_shape) \
            or len(frames) > MAX_FRAMES:
        f.fail("frames", f"uint8 of shape (K, {FIXED_SAMPLES}, {', '.join(map(str, recipe.image_shape))}), "
                         f"K <= {MAX_FRAMES}")
    at = f.arrays.get("frame_iterations")
    if at is None or at.dtype.kind not in "iu" or at.shape != (len(frames),):
        f.fail("frame_iterations", f"{len(frames)} integers")
    if len(at) and (at[0] < 1 or at[-1] > iteration or (np.diff(at) <= 0).any()):
        raise CheckpointError(f"{f.source}: field 'frame_iterations' should increase, from 1 to at most {iteration}")


def check_weights(arrays: dict, prefix: str, model, source: str) -> dict:
    """{name: array} of ``prefix``/* fields, each the shape and dtype of the model's own, finite."""
    f = _Fields(arrays, source)
    own = model.weights()
    found = {k[len(prefix) + 1:] for k in arrays if k.startswith(prefix + "/")}
    missing, unexpected = sorted(set(own) - found), sorted(found - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{f.source}: the {prefix} weights do not fit the {model.name} model the recipe builds: "
                              f"missing {missing[:5] or 'nothing'}, unexpected {[one_line(u) for u in unexpected[:5]] or 'nothing'}")
    weights = {}
    for name, target in own.items():
        value = f.floats(f"{prefix}/{name}", target.shape, target.dtype)
        if name.endswith("moving_variance") and (value < 0).any():
            raise CheckpointError(f"{f.source}: field '{prefix}/{name}' holds a negative variance")
        weights[name] = value
    return weights


def check_training_state(arrays: dict, source: str, models: dict, optimizers: dict) -> None:
    """The optimizer and random-generator fields, against the models and optimizers they
    will be loaded into; ``models`` and ``optimizers`` are keyed by prefix ("G", "D")."""
    f = _Fields(arrays, source)
    known = {"recipe", "iteration", "rng", "seed", "fixed_z", "history", "frames", "frame_iterations", "log_bytes",
             "data_source", "format"}
    for prefix, model in models.items():
        known |= {f"{prefix}/{k}" for k in model.weights()}
        layer_names = {layer.name for layer in model.layers}
        for key in [k for k in arrays if k.startswith(f"{prefix}_rng/")]:
            if key.split("/", 1)[1] not in layer_names:
                raise CheckpointError(f"{f.source}: field {one_line(key)!r} names no layer of the {prefix} model")
            f.rng_state(key)
            known.add(key)
        opt, params = optimizers[prefix], model.params
        head = f"opt_{prefix}/"
        f.integer(head + "iterations", 0, 2**62)
        known.add(head + "iterations")
        for key in [k for k in arrays if k.startswith(head) and k != head + "iterations"]:
            name, _, slot = key[len(head):].rpartition("/")
            if name not in params or slot not in opt.slots:
                raise CheckpointError(
                    f"{f.source}: field {one_line(key)!r} is not a slot of {type(opt).__name__} "
                    f"({', '.join(opt.slots) or 'none'}) for a parameter of the {prefix} model; state resumes only "
                    f"into the optimizer (and momentum or not) that wrote it")
            value = f.floats(key, params[name].shape, params[name].dtype)
            if slot in NON_NEGATIVE_SLOTS and (value < 0).any():
                raise CheckpointError(f"{f.source}: field {key!r} holds negative second moments")
            known.add(key)
    unexpected = sorted(set(arrays) - known)
    if unexpected:
        raise CheckpointError(f"{f.source}: unexpected field {one_line(unexpected[0])!r}: not part of a checkpoint")


# --- a trainer's state, to and from checkpoint fields ------------------------------------
def state_of(trainer) -> dict:
    """Every checkpoint field of a GANTrainer: weights, optimizer slots, random states,
    iteration, history, sample grids, recipe."""
    arrays = {}
    for prefix, model in (("G", trainer.G), ("D", trainer.D)):
        arrays.update({f"{prefix}/{k}": v for k, v in model.weights().items()})
        arrays.update({f"{prefix}_rng/{layer.name}": _rng_json(layer.rng) for layer in model.layers})
    for prefix, opt in (("opt_G", trainer.g_opt), ("opt_D", trainer.d_opt)):
        arrays.update({f"{prefix}/{k}": v for k, v in opt.state_dict().items()})
    arrays["rng"] = _rng_json(trainer.batches.rng)
    arrays["iteration"] = np.array(trainer.iteration)
    arrays["seed"] = np.array(trainer.seed)
    arrays["fixed_z"] = trainer.fixed_z
    arrays["history"] = np.array(trainer.history, dtype=np.float64).reshape(-1, len(METRICS))
    arrays["recipe"] = np.array(json.dumps(trainer.recipe.to_dict()))
    if trainer.data_source is not None:
        arrays["data_source"] = np.array(json.dumps(trainer.data_source))
    frames = trainer.frames
    empty = np.zeros((0, FIXED_SAMPLES, *trainer.recipe.image_shape), np.uint8)
    arrays["frames"] = np.stack([f for _, f in frames]) if frames else empty
    arrays["frame_iterations"] = np.array([it for it, _ in frames], dtype=np.int64)
    arrays["log_bytes"] = np.array(trainer.log_bytes)
    return arrays


def restore(trainer, arrays: dict, source: str = "checkpoint") -> None:
    """Set a GANTrainer's state from checkpoint fields, every one checked first against its
    models and optimizers."""
    check_fields(arrays, source)
    check_training_state(arrays, source, {"G": trainer.G, "D": trainer.D}, {"G": trainer.g_opt, "D": trainer.d_opt})
    for prefix, model in (("G", trainer.G), ("D", trainer.D)):
        model.set_weights(check_weights(arrays, prefix, model, source), source=f"{source} ({prefix})")
        rngs = _section(arrays, prefix + "_rng")
        for layer in model.layers:
            if layer.name in rngs:
                layer.rng.bit_generator.state = json.loads(str(rngs[layer.name]))
    trainer.g_opt.load_state_dict(_section(arrays, "opt_G"), source=f"{source} (G's optimizer)")
    trainer.d_opt.load_state_dict(_section(arrays, "opt_D"), source=f"{source} (D's optimizer)")
    trainer.batches.rng.bit_generator.state = json.loads(str(arrays["rng"]))
    trainer.iteration = int(arrays["iteration"])
    trainer.fixed_z = np.array(arrays["fixed_z"])
    if "history" in arrays:  # checkpoints from before metrics.csv have none
        trainer.history[:] = [tuple(row) for row in arrays["history"].tolist()]
    if "frames" in arrays:
        trainer.frames = [(int(it), frame) for it, frame in zip(arrays["frame_iterations"], arrays["frames"])]
    trainer.log_bytes = int(arrays["log_bytes"]) if "log_bytes" in arrays else 0


def _rng_json(rng):
    return np.array(json.dumps(rng.bit_generator.state))


def _section(arrays: dict, prefix: str) -> dict:
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}
