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

With a run directory (a :class:`~scratchgan.rundir.Run`), every interval appends the
tutorial's line to log.txt, writes a grid of 16 samples from one fixed z to samples/,
and rewrites checkpoint.npz (both models, both optimizers, the random state, the
iteration, the history and the sample grids) and metrics.csv; at the end it draws
curves.png (losses and accuracy) and progress.gif (the grids as an animation) from the
state it holds, never from the files it wrote. ``train --resume`` continues exactly
where the checkpoint stopped.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import checkpoint
from .backend import to_device
from .distributed import SINGLE, DistributedError
from .errors import ScratchganError
from .images import save_grid, to_unit_range
from .losses import BinaryCrossentropy, binary_accuracy
from .rundir import Run
from .plots import grids_to_gif, plot_curves
from .xp import array_module, is_device_array, like, to_host

METRICS = checkpoint.METRICS


class TrainingError(ScratchganError, RuntimeError):
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

    def __init__(self, generator, discriminator, recipe, data, seed: int, run=None, world=None,
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
        self.fixed_z = sample_latent(np.random.default_rng([self.seed, 2]), checkpoint.FIXED_SAMPLES, recipe)
        self.iteration = 0
        self.bce = BinaryCrossentropy()
        self.run = run  # the run directory (scratchgan.rundir.Run), or None: nothing written
        self.history = []  # one row per iteration: METRICS
        self.frames = []  # (iteration, uint8 (16, H, W, C)): the fixed-z samples at every interval
        self.log_bytes = 0  # log.txt's length after the last line this run appended
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
        if self.run is not None or self.world.size > 1:
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
        if self.run is not None:
            if interrupted:
                self.save_checkpoint()
            self.write_pictures()
        if interrupted:
            log(f"interrupted: checkpoint written at iteration {self.iteration}; "
                f"continue with --resume {self.run.path if self.run is not None else 'its run directory'}")
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
                if self.run is not None:
                    self.log_bytes = self.run.append_log(line)
                    self.save_samples()
                    self.save_checkpoint()
        self._settle_into_history(pending)  # an interruption can leave some unread

    def _settle_into_history(self, pending) -> None:
        """Read (and check) the losses of ``pending`` [(iteration, d, acc, g, seconds)] into the history."""
        if pending:
            settled = self.settle([row[:4] for row in pending])
            self.history.extend((*row, seconds) for row, (*_, seconds) in zip(settled, pending))
            pending.clear()

    def save_samples(self) -> None:
        """The fixed z's samples: a PNG grid in samples/, and a frame kept for progress.gif."""
        images = to_unit_range(self.G.forward(self._here(self.fixed_z), training=False), self.recipe.data_range)
        save_grid(images, self.run.sample_path(self.iteration), columns=4)
        self.frames.append((self.iteration, np.round(images * 255).astype(np.uint8)))
        if len(self.frames) > checkpoint.MAX_FRAMES:  # a long run's: every other one, the newest kept
            self.frames = self.frames[:-1:2] + self.frames[-1:]

    def write_pictures(self):
        """curves.png (losses and accuracy) and progress.gif (the sample grids) of the run,
        drawn from the history and frames this trainer holds."""
        if len(self.history) >= 2:
            plot_curves(self.history, self.run.picture_path("curves.png"))
        if self.frames:
            grids_to_gif([(f"iteration {it:,}", frame) for it, frame in self.frames],
                         self.run.picture_path("progress.gif"))

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
        shape = (0, checkpoint.FIXED_SAMPLES, *self.recipe.image_shape)
        arrays["frames"] = np.stack([f for _, f in self.frames]) if self.frames else np.zeros(shape, np.uint8)
        arrays["frame_iterations"] = np.array([it for it, _ in self.frames], dtype=np.int64)
        arrays["log_bytes"] = np.array(self.log_bytes)
        return arrays

    def save_checkpoint(self, path=None):
        """checkpoint.npz and metrics.csv in the run directory (or ``path`` and metrics.csv beside it)."""
        if path is None:
            self.run.write_checkpoint(self.state_arrays(), self.history)
        else:
            Run(Path(path).parent, writer=False).write_checkpoint(self.state_arrays(), self.history, Path(path).name)

    def load_state_arrays(self, arrays, source="checkpoint"):
        """Restore the training state from checkpoint fields, every one checked first against
        these models and optimizers (scratchgan/checkpoint.py)."""
        checkpoint.check_fields(arrays, source)
        checkpoint.check_training_state(arrays, source, {"G": self.G, "D": self.D},
                                        {"G": self.g_opt, "D": self.d_opt})
        for prefix, model in (("G", self.G), ("D", self.D)):
            model.set_weights(checkpoint.check_weights(arrays, prefix, model, source), source=f"{source} ({prefix})")
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
        if "frames" in arrays:
            self.frames = [(int(it), frame) for it, frame in zip(arrays["frame_iterations"], arrays["frames"])]
        self.log_bytes = int(arrays["log_bytes"]) if "log_bytes" in arrays else 0


def _restore_rng(rng, text, where):
    """Set a generator's state from JSON text the checkpoint's schema has checked."""
    rng.bit_generator.state = json.loads(str(text))


def _rng_json(rng):
    return np.array(json.dumps(rng.bit_generator.state))


def _section(arrays, prefix):
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}
