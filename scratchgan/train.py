"""The GAN training loop of the tutorials, with checkpoints that make a run resumable.

One iteration (k = 1 discriminator step, as in all five tutorials)::

    real  = a random batch of data                                  label 1
    fake  = G(z), z drawn afresh, G in inference mode (Keras's predict)   label 0
    D step on real, D step on fake           (two optimizer steps, as train_on_batch twice)
    G step: z drawn afresh, loss = BCE(D(G(z)), 1)  (non-saturating -log D(G(z)));
            D runs forward and backward for dL/dG(z) only: its weights are frozen
            and their gradients are not computed.

The reported D loss and accuracy are the means of the real and fake steps, measured
before each update (as Keras's train_on_batch reports them).

A run directory holds config.json, log.txt (the tutorial's lines), metrics.csv (every
iteration's losses and accuracy), samples/*.png (a grid of 16 samples from one fixed z
at every interval) and checkpoint.npz (both models, both optimizers, the random state,
the iteration and the history), rewritten atomically at every interval; at the end
curves.png (losses and accuracy) and progress.gif (the grids as an animation). ``GANTrainer.resume(run_dir)`` continues exactly where it stopped.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import zoo
from .images import save_grid, to_unit_range
from .io import atomic_save_npz, atomic_write, load_npz
from .rundir import append_line
from .losses import BinaryCrossentropy, binary_accuracy
from .plots import grids_to_gif, plot_curves
from .backend import to_device
from .distributed import SINGLE, DistributedError, ShardedGenerator
from .xp import array_module, is_device_array, like, to_host

#: the columns of metrics.csv and of a trainer's history
METRICS = ("iteration", "d_loss", "d_accuracy", "g_loss", "seconds")


class TrainingError(RuntimeError):
    pass


def scale_images(images_uint8, data_range, image_shape):
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, H, W, C) in ``data_range``."""
    x = np.asarray(images_uint8)
    if x.ndim == 3:
        x = x[..., None]
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise TrainingError(f"data images have shape {x.shape[1:]}, the model expects {tuple(image_shape)}")
    lo, hi = data_range
    return (x.astype(np.float32) / np.float32(255.0)) * np.float32(hi - lo) + np.float32(lo)


def _prepare_data_parallel(G, D, recipe, world) -> None:
    """Batch normalisation synchronised over the ranks; a batch too small to share refused."""
    for model in (G, D):  # batch normalisation's statistics span the ranks
        for layer in model.layers:
            if hasattr(layer, "sync"):
                layer.sync = world
    if recipe.d_batch < world.size:
        raise DistributedError(f"batch of {recipe.d_batch} for D over {world.size} ranks: each rank needs at least one "
                               f"row; use fewer ranks or a larger --batch-size")


def step_memory_bytes(G, D, recipe) -> int:
    """About the memory one training step needs: every layer's output of G and D, for
    twice the batch (D sees real and fake), as the model's dtype (dcgan at batch 256:
    626 MB estimated, 514 MB measured peak). Used to refuse a batch size far beyond the
    machine's memory before a run directory is written."""
    itemsize = np.dtype(G.layers[0].dtype).itemsize
    per_image = sum(int(np.prod(layer.output_shape[1:])) for model in (G, D) for layer in model.layers)
    return 2 * recipe.batch_size * per_image * itemsize


def physical_memory_bytes() -> int | None:
    """The machine's RAM (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def sample_latent(rng, n: int, recipe):
    """z of shape (n, z_dim), float32: N(0, 1), or U(-1, 1) for recipes with latent="uniform"."""
    shape = (n, recipe.z_dim)
    if recipe.latent == "uniform":
        return rng.uniform(-1, 1, shape).astype(np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


class GANTrainer:
    """The tutorials' training loop. ``world`` (scratchgan/distributed.py) makes it
    data-parallel: each rank trains on its share of every batch, drawn from the same
    global random numbers, and gradients are summed over the ranks before each update."""

    def __init__(self, generator, discriminator, recipe, data, seed: int, run_dir=None, world=None,
                 data_source=None):
        self.world = world or SINGLE
        if self.world.size > 1:
            _prepare_data_parallel(generator, discriminator, recipe, self.world)
        self.G, self.D, self.recipe = generator, discriminator, recipe
        # on the cupy backend the whole dataset moves to the GPU once; batches are cut there
        self.data = to_device(data)
        self.seed = int(seed)
        self.d_opt = recipe.make_optimizer("d")
        self.g_opt = recipe.make_optimizer("g")
        self.rng = np.random.default_rng([self.seed, 1])
        self.fixed_z = sample_latent(np.random.default_rng([self.seed, 2]), 16, recipe)
        self.iteration = 0
        self.bce = BinaryCrossentropy()
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.history = []  # one row per iteration: METRICS
        #: where the images came from ({"data": spec, "classes": [...]}), kept in the checkpoint so
        #: that a resumed run's config.json can be checked against it
        self.data_source = data_source
        self._permutation = None  # (epoch, permutation) of the "shuffle" data order
        self._label_cache = {}  # (n_real, n_fake, dtype) -> D's noiseless targets

    # --- one iteration ---------------------------------------------------------------
    def real_batch(self, n: int, draw: int):
        """The ``draw``-th real batch of n images, by the recipe's data order."""
        order, count = self.recipe.data_order, len(self.data)
        lo, hi = self.world.rows(n)  # under MPI: the rows of the global batch this rank trains on
        if order == "random":
            return self.data[self._here(self.rng.integers(0, count, n)[lo:hi])]
        per_epoch = max(count // n, 1)
        epoch, j = divmod(draw, per_epoch)
        index = np.arange(j * n, (j + 1) * n) % count
        if order == "shuffle":
            index = self._epoch_permutation(epoch)[index]
        return self.data[self._here(index[lo:hi])]

    def _latent(self, n: int):
        """This rank's rows of n latent vectors (all n drawn, so every rank draws alike)."""
        lo, hi = self.world.rows(n)
        return self._here(sample_latent(self.rng, n, self.recipe)[lo:hi])

    def _share(self, *halves: int):
        """(this rank's weight n_r / n in a batch made of ``halves``, the global row count,
        the global rows this rank holds): each half (real, fake) is split alike."""
        if self.world.size == 1:  # one process: all rows are its own, nothing to index
            return 1.0, sum(halves), None
        rows, start, mine = [], 0, 0
        for n in halves:
            lo, hi = self.world.rows(n)
            rows.append(np.arange(start + lo, start + hi))
            start += n
            mine += hi - lo
        return mine / start, start, np.concatenate(rows)

    def _shard_dropout(self, model, total: int, rows) -> None:
        """Have the model's dropout layers draw masks for all ``total`` rows and keep ``rows``."""
        if self.world.size > 1:
            for layer in model.layers:
                if hasattr(layer, "shard"):
                    layer.shard = (total, rows)

    def _here(self, host_array):
        """A host array (drawn by NumPy's generator, so every backend draws the same numbers)
        moved to where the data and weights live: a small copy to the GPU on the cupy backend."""
        return like(host_array, self.data)

    def _epoch_permutation(self, epoch: int):
        """A permutation per epoch, a pure function of (seed, epoch) so resuming needs no
        state; drawn once per epoch, not per batch."""
        if self._permutation is None or self._permutation[0] != epoch:
            self._permutation = (epoch, np.random.default_rng([self.seed, 3, epoch]).permutation(len(self.data)))
        return self._permutation[1]

    def _targets(self, n_real: int, n_fake: int, dtype):
        """D's targets: real_label (smoothed) then fake_label, plus U(0, label_noise).
        The noiseless labels are built once per shape (and moved to the GPU once there)."""
        r = self.recipe
        key = (n_real, n_fake, np.dtype(dtype))
        base = self._label_cache.get(key)
        if base is None:
            real = r.real_label + r.label_smoothing * (r.fake_label - r.real_label)
            labels = np.concatenate([np.full(n_real, real), np.full(n_fake, r.fake_label)]).astype(dtype)[:, None]
            base = self._label_cache[key] = self._here(labels)
        if r.label_noise:  # drawn on the host by the trainer's generator: every backend adds the same noise
            base = base + self._here((r.label_noise * self.rng.random(base.shape)).astype(dtype))
        if self.world.size > 1:  # all rows drawn, this rank's kept
            base = base[self._here(self._share(n_real, n_fake)[2])]
        return base

    def _d_forward_backward(self, images, target, *halves):
        """D's loss and accuracy on a batch made of ``halves`` (global row counts), its
        gradients added to D.grads; under MPI all three weighted by this rank's share, to be
        summed over the ranks by the update (_d_update)."""
        weight, total, rows = self._share(*halves)
        self._shard_dropout(self.D, total, rows)
        p = self.D.forward(images, training=True)
        loss = self.bce.forward(p, target, to_host=False)  # on a GPU both stay there until logged
        dp = self.bce.backward()
        self.D.backward(dp if self.world.size == 1 else dp * dp.dtype.type(weight))
        acc = binary_accuracy(p, target, to_host=False)  # noisy or smoothed targets stay on their side of 0.5
        if self.world.size > 1:
            loss, acc = weight * loss, weight * acc
        return loss, acc

    def _d_update(self, *scores):
        """D's optimizer step on the gradients summed over the ranks (already weighted by each
        rank's share); ``scores`` (losses, accuracies) are summed in the same Allreduce."""
        scores = self.world.sum_gradients(self.D, scores)
        self.d_opt.step(self.D.params, self.D.grads)
        return scores

    def d_step(self, draw: int):
        """One discriminator update (the recipe's d_mode); returns (loss, accuracy)."""
        r, n = self.recipe, self.recipe.d_batch
        real = self.real_batch(n, draw)
        fake = self.G.forward(self._latent(n), training=r.fake_training_mode)
        self.D.zero_grad()
        if r.d_mode == "concat":
            t = self._targets(n, n, real.dtype)
            loss, acc = self._d_forward_backward(array_module(real).concatenate([real, fake]), t, n, n)
            return self._d_update(loss, acc)
        t = self._targets(n, n, real.dtype)
        mine = len(real)
        t_real, t_fake = t[:mine], t[mine:]
        loss_real, acc_real = self._d_forward_backward(real, t_real, n)
        if r.d_mode == "separate":  # two train_on_batch calls: update, then the fake batch
            loss_real, acc_real = self._d_update(loss_real, acc_real)
            self.D.zero_grad()
            loss_fake, acc_fake = self._d_update(*self._d_forward_backward(fake, t_fake, n))
        else:  # "sum": one update on both batches' gradients
            loss_fake, acc_fake = self._d_forward_backward(fake, t_fake, n)
            loss_real, acc_real, loss_fake, acc_fake = self._d_update(loss_real, acc_real, loss_fake, acc_fake)
        # "separate" reports the mean of the two train_on_batch losses; "sum" its summed loss
        loss = 0.5 * (loss_real + loss_fake) if r.d_mode == "separate" else loss_real + loss_fake
        return loss, 0.5 * (acc_real + acc_fake)

    def g_step(self):
        """One generator update through the frozen D (non-saturating loss); returns the loss."""
        r = self.recipe
        z = self._latent(r.batch_size)
        weight, total, rows = self._share(r.batch_size)
        self.G.zero_grad()
        self._shard_dropout(self.G, total, rows)
        fake = self.G.forward(z, training=True)
        self._shard_dropout(self.D, total, rows)
        p = self.D.forward(fake, training=True)
        g_loss = self.bce.forward(p, array_module(p).full(p.shape, r.real_label, dtype=p.dtype), to_host=False)
        dp = self.bce.backward()
        d_fake = self.D.backward(dp if self.world.size == 1 else dp * dp.dtype.type(weight), need_param_grads=False)
        self.G.backward(d_fake)
        if self.world.size > 1:  # the gradients and the loss in one Allreduce
            (g_loss,) = self.world.sum_gradients(self.G, (weight * g_loss,))
        self.g_opt.step(self.G.params, self.G.grads)
        return g_loss

    def step(self, to_host: bool = True):
        """One iteration (d_steps D updates, one G update); returns (d_loss, d_accuracy, g_loss):
        Python floats, checked to be finite. With ``to_host=False`` they are scalars where the
        model lives, unchecked (on a GPU: no device-to-host read; ``settle`` reads and checks)."""
        k = self.recipe.d_steps
        d = [self.d_step(self.iteration * k + i) for i in range(k)]
        g_loss = self.g_step()
        self.iteration += 1
        d_loss, acc = sum(x[0] for x in d) / k, sum(x[1] for x in d) / k
        if not to_host:
            return d_loss, acc, g_loss
        return self.settle([(self.iteration, d_loss, acc, g_loss)])[0][1:]

    def settle(self, rows):
        """[(iteration, d_loss, acc, g_loss)] with the scalars read to the host as floats (one
        read for all of them on a GPU), after checking the loss's deferred range check and that
        every loss is finite; raises TrainingError naming the first bad iteration."""
        self.bce.check()
        values = [v for row in rows for v in row[1:]]
        xp = next((array_module(v) for v in values if is_device_array(v)), np)
        if xp is not np:  # one transfer: the scalars stacked on the device
            values = to_host(xp.stack([xp.asarray(v, dtype=xp.float64) for v in values])).tolist()
        else:
            values = [float(v) for v in values]
        settled = [(it, *values[3 * i:3 * i + 3]) for i, (it, *_) in enumerate(rows)]
        for it, d_loss, _, g_loss in settled:
            if not (np.isfinite(d_loss) and np.isfinite(g_loss)):
                raise TrainingError(
                    f"iteration {it}: loss is not finite (D {d_loss}, G {g_loss}); "
                    f"the last good checkpoint is kept"
                )
        return settled

    # --- the loop ----------------------------------------------------------------------
    def train(self, iterations: int, sample_interval: int, log=print, progress=None):
        """Run until ``iterations`` iterations are done in total, logging, sampling and
        checkpointing every ``sample_interval`` iterations (and at the end); then draw
        curves.png and progress.gif into the run directory.

        ``progress``: a tqdm bar (iterations per second, D loss, D accuracy, G loss);
        None shows it only on a terminal, False never.
        Ctrl-C (SIGINT) or SIGTERM finishes the iteration under way, writes a checkpoint and
        raises KeyboardInterrupt: nothing is lost, and ``--resume`` continues from there."""
        start, t0 = self.iteration, time.perf_counter()
        interrupted = []
        previous = {}
        if self.run_dir is not None or self.world.size > 1:
            for signum in (signal.SIGINT, signal.SIGTERM):  # kill's default signal is handled like Ctrl-C
                try:
                    previous[signum] = signal.signal(signum, lambda *_: interrupted.append(True))
                except ValueError:  # not the main thread: no handler, signals work as usual
                    break
        bar = tqdm(total=iterations, initial=self.iteration, unit="it", dynamic_ncols=True,
                   disable=None if progress is None else not progress, leave=True)
        if not bar.disable:
            log = bar.write
        try:
            self._loop(iterations, sample_interval, log, interrupted, bar)
        finally:
            bar.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.run_dir is not None:
            if interrupted:
                self.save_checkpoint(self.run_dir / "checkpoint.npz")
            self.write_pictures()
        if interrupted:
            log(f"interrupted: checkpoint written at iteration {self.iteration}; "
                f"continue with --resume {self.run_dir}")
            raise KeyboardInterrupt
        elapsed = time.perf_counter() - t0
        return (self.iteration - start) / elapsed if elapsed > 0 else float("nan")

    def _loop(self, iterations, sample_interval, log, interrupted, bar):
        t0 = time.perf_counter() - (self.history[-1][4] if self.history else 0.0)
        pending = []  # on a GPU: iterations whose losses are still on the device
        started, first = time.perf_counter(), self.iteration
        while self.iteration < iterations:
            if self.world.any(interrupted):  # a signal on any rank stops all ranks at the same iteration
                interrupted.append(True)
                break
            d_loss, acc, g_loss = self.step(to_host=False)
            pending.append((self.iteration, d_loss, acc, g_loss, time.perf_counter() - t0))
            bar.update(1)
            every_ten, logged = self.iteration % 10 == 0, (self.iteration % sample_interval == 0
                                                           or self.iteration == iterations)
            if not is_device_array(g_loss) or every_ten or logged:  # read (and check) them now
                self._settle_into_history(pending)
                _, d_loss, acc, g_loss, _ = self.history[-1]
            if every_ten or self.iteration == iterations:
                # the recipe's batch is the global batch: images per second over all ranks
                images = (self.iteration - first) * self.recipe.batch_size / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix_str(f"D loss {d_loss:.3f}, acc {100 * acc:.1f}%, G loss {g_loss:.3f}, "
                                    f"{images:,.0f} img/s", refresh=False)
            if logged:
                line = f"{self.iteration} [D loss: {d_loss:f}, acc.: {100 * acc:.2f}%] [G loss: {g_loss:f}]"
                log(line)
                if self.run_dir is not None:
                    append_line(self.run_dir / "log.txt", line)
                    self.save_samples(self.run_dir / "samples" / f"iter_{self.iteration:06d}.png")
                    self.save_checkpoint(self.run_dir / "checkpoint.npz")
        self._settle_into_history(pending)  # an interruption can leave some unread

    def _settle_into_history(self, pending) -> None:
        """Read (and check) the losses of ``pending`` [(iteration, d, acc, g, seconds)] into the history."""
        if pending:
            settled = self.settle([row[:4] for row in pending])
            self.history.extend((*row, seconds) for row, (*_, seconds) in zip(settled, pending))
            pending.clear()

    def save_samples(self, path):
        images = to_host(self.G.forward(self._here(self.fixed_z), training=False))
        save_grid(to_unit_range(images, self.recipe.data_range), path, columns=4)

    def write_pictures(self):
        """curves.png (losses and accuracy) and progress.gif (the sample grids) of the run."""
        if len(self.history) >= 2:
            plot_curves(self.history, self.run_dir / "curves.png")
        grids = sorted((self.run_dir / "samples").glob("iter_*.png"))
        if grids:
            grids_to_gif([(f"iteration {int(p.stem[5:]):,}", p) for p in grids], self.run_dir / "progress.gif")

    # --- checkpoints --------------------------------------------------------------------
    def state_arrays(self) -> dict:
        arrays = {}
        for prefix, model in (("G", self.G), ("D", self.D)):
            arrays.update({f"{prefix}/{k}": v for k, v in model.weights().items()})
            arrays.update({f"{prefix}_rng/{l.name}": _rng_json(l.rng) for l in model.layers})
        for prefix, opt in (("opt_G", self.g_opt), ("opt_D", self.d_opt)):
            arrays.update({f"{prefix}/{k}": v for k, v in opt.state_dict().items()})
        arrays["rng"] = _rng_json(self.rng)
        arrays["iteration"] = np.array(self.iteration)
        arrays["seed"] = np.array(self.seed)
        arrays["fixed_z"] = self.fixed_z
        arrays["history"] = np.array(self.history, dtype=np.float64).reshape(-1, len(METRICS))
        arrays["recipe"] = np.array(json.dumps(self.recipe.to_dict()))
        if self.data_source is not None:
            arrays["data_source"] = np.array(json.dumps(self.data_source))
        return arrays

    def save_checkpoint(self, path):
        """checkpoint.npz, and beside it metrics.csv: one row per iteration, the same
        history as the checkpoint holds, so the two always agree."""
        path = Path(path)
        atomic_save_npz(path, self.state_arrays())
        with atomic_write(path.parent / "metrics.csv") as tmp:
            np.savetxt(tmp, np.array(self.history).reshape(-1, len(METRICS)), delimiter=",",
                       header=",".join(METRICS), comments="", fmt=["%d", "%.6f", "%.4f", "%.6f", "%.3f"])

    def load_state_arrays(self, arrays, source="checkpoint"):
        try:
            self._load_state_arrays(arrays, source)
        except (TypeError, KeyError, json.JSONDecodeError) as err:  # a field of the wrong kind
            raise TrainingError(f"{source}: cannot restore the training state ({type(err).__name__}: {err})") from None

    def _load_state_arrays(self, arrays, source):
        for prefix, model in (("G", self.G), ("D", self.D)):
            model.set_weights(_section(arrays, prefix), source=f"{source} ({prefix})")
            rngs = _section(arrays, prefix + "_rng")
            for layer in model.layers:
                if layer.name in rngs:
                    _restore_rng(layer.rng, rngs[layer.name], f"{source}: field '{prefix}_rng/{layer.name}'")
        self.g_opt.load_state_dict(_section(arrays, "opt_G"), source=f"{source} (G's optimizer)")
        self.d_opt.load_state_dict(_section(arrays, "opt_D"), source=f"{source} (D's optimizer)")
        _restore_rng(self.rng, arrays["rng"], f"{source}: field 'rng'")
        self.iteration = int(arrays["iteration"])
        self.fixed_z = np.array(arrays["fixed_z"])
        if "history" in arrays:  # checkpoints from before metrics.csv have none
            self.history = [tuple(row) for row in arrays["history"].tolist()]


def _restore_rng(rng, text, where):
    try:
        rng.bit_generator.state = json.loads(str(text))
    except (ValueError, TypeError, KeyError) as err:
        raise TrainingError(f"{where}: cannot restore the training state (not a random generator's state: {err})") from None


def _rng_json(rng):
    return np.array(json.dumps(rng.bit_generator.state))


def _section(arrays, prefix):
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}


def load_checkpoint(path):
    """(generator, discriminator, recipe, arrays) rebuilt from a checkpoint file, every
    field checked for its type and range first (a checkpoint is input like any file)."""
    arrays = load_npz(path)
    for key in ("recipe", "iteration", "rng"):
        if key not in arrays:
            raise TrainingError(f"{path}: not a scratchgan training checkpoint (no {key!r} entry)")
    recipe = _checked_fields(arrays, path)
    G, D, _ = zoo.build(recipe.model, z_dim=recipe.z_dim)
    G.set_weights(_section(arrays, "G"), source=f"{path} (G)")
    D.set_weights(_section(arrays, "D"), source=f"{path} (D)")
    return G, D, recipe, arrays


def _checked_fields(arrays, path):
    """The checkpoint's recipe, after checking the fields that are not weights."""
    def bad(key, expected):
        value = arrays[key]
        got = f"{value.dtype} of shape {value.shape}" if hasattr(value, "dtype") else type(value).__name__
        raise TrainingError(f"{path}: field {key!r} should be {expected}, got {got}")

    for key in ("iteration", "seed"):
        if key in arrays:
            value = arrays[key]
            if value.shape != () or value.dtype.kind not in "iu" or not 0 <= int(value) <= 2**63 - 1:
                bad(key, "one integer from 0 to 2^63-1")
    for key in [k for k in arrays if k in ("recipe", "rng", "data_source") or "_rng/" in k]:
        if arrays[key].shape != () or arrays[key].dtype.kind != "U":
            bad(key, "one JSON text")
    try:
        spec = json.loads(str(arrays["recipe"]))
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
            raise ValueError("not a JSON object with a model name")
        recipe = zoo.Recipe.from_dict(spec)
    except (ValueError, KeyError, TypeError) as err:
        raise TrainingError(f"{path}: field 'recipe' is not a valid recipe ({err})") from None
    if "fixed_z" in arrays and (arrays["fixed_z"].ndim != 2 or arrays["fixed_z"].shape[1] != recipe.z_dim
                                or arrays["fixed_z"].dtype.kind != "f"):
        bad("fixed_z", f"floats of shape (N, {recipe.z_dim})")
    if "history" in arrays and (arrays["history"].ndim != 2 or arrays["history"].shape[1] != len(METRICS)
                                or arrays["history"].dtype.kind != "f"):
        bad("history", f"floats of shape (N, {len(METRICS)})")
    return recipe


def read_config(run_dir, recipe, seed, data_source=None) -> dict:
    """config.json of a run being resumed, checked against its checkpoint: it must be a JSON
    object naming the same model and seed, with a data source the command line would accept
    and, where the checkpoint records one (``data_source``), the same data and classes."""
    from .datasets.catalog import parse_spec

    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrainingError(f"{path}: missing; a run directory holds config.json beside checkpoint.npz") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise TrainingError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(config, dict):
        raise TrainingError(f"{path}: expected a JSON object, got {type(config).__name__}")
    if config.get("model") != recipe.model:
        raise TrainingError(f"{path} names model {config.get('model')!r} but checkpoint.npz beside it holds a "
                            f"{recipe.model!r} run: the two disagree, so this run directory cannot be resumed")
    if config.get("seed", seed) != seed:
        raise TrainingError(f"{path} names seed {config.get('seed')!r} but checkpoint.npz holds seed {seed}: "
                            f"the two disagree, so this run directory cannot be resumed")
    if "data" in config:
        if not isinstance(config["data"], str) or not config["data"]:
            raise TrainingError(f"{path}: 'data' should be a data source like \"mnist\" or a path, "
                                f"got {config['data']!r}")
        try:
            parse_spec(config["data"])
        except (ValueError, KeyError) as err:
            raise TrainingError(f"{path}: 'data': {err}") from None
    classes = config.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise TrainingError(f"{path}: 'classes' should be a list of class names, got {classes!r}")
    if data_source is not None:
        for key in ("data", "classes"):
            if config.get(key) != data_source.get(key):
                raise TrainingError(f"{path} gives {key} {config.get(key)!r} but checkpoint.npz was trained on "
                                    f"{data_source.get(key)!r}: the two disagree, so this run directory cannot be resumed")
    return config


def new_run_dir(base="runs", model="mlp") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{model}-{stamp}"
    n = 1
    while path.exists():
        path = Path(base) / f"{model}-{stamp}-{n}"
        n += 1
    return path


def write_config(run_dir: Path, config: dict):
    with atomic_write(run_dir / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(config, indent=2) + "\n")
