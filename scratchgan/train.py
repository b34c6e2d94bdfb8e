"""The GAN training loop of the tutorials, with checkpoints that make a run resumable.

One iteration (k = 1 discriminator step, as in all five tutorials)::

    real  = a batch of data                                         label 1
    fake  = G(z), z drawn afresh, G in inference mode (Keras's predict)   label 0
    D step on real, D step on fake           (two optimizer steps, as train_on_batch twice)
    G step: z drawn afresh, loss = BCE(D(G(z)), 1)  (non-saturating -log D(G(z)));
            D runs forward and backward for dL/dG(z) only: its weights are frozen
            and their gradients are not computed.
    No backward computes a gradient for its input when that input is data or a
    latent (D's steps, G's backward): the first layer's backward-data op is skipped.

The reported D loss and accuracy are the means of the real and fake steps, measured
before each update (as Keras's train_on_batch reports them).

Three classes, one concern each:

* :class:`~scratchgan.batches.BatchSource` draws the real batches, latents and targets;
* :class:`GANUpdates` makes the D and G updates of one iteration, as the tutorials write them;
* :class:`GANTrainer` runs the loop: losses read through :class:`~scratchgan.metrics.Metrics`,
  log lines, sample grids and checkpoints into the run directory
  (:class:`~scratchgan.rundir.Run`), and Ctrl-C.

Data-parallel training (scratchgan/distributed.py) plugs in from outside the updates: the
batch source keeps this rank's rows of every draw and hands out its ``share``, the
optimizers are wrapped in ``DataParallel`` (which sums the gradients over the ranks), and
batch normalisation was built synchronised (``zoo.build(..., world=)``). The updates
only scale their losses by the share's weight.
"""
from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import checkpoint
from .backend import to_device
from .batches import BatchSource, sample_latent, scale_images
from .distributed import SINGLE, DataParallel, DistributedError
from .errors import TrainingError
from .images import save_grid, to_unit_range
from .layers import BatchNormalization
from .losses import BinaryCrossentropy, binary_accuracy
from .metrics import Metrics
from .plots import grids_to_gif, plot_curves
from .rundir import Run
from .xp import array_module, like

__all__ = ["GANTrainer", "GANUpdates", "TrainingError", "sample_latent", "scale_images"]


class GANUpdates:
    """The updates of one iteration: ``recipe.d_steps`` D updates, then one G update.
    Each returns its losses as 0-d arrays where the model lives, this rank's share of them."""

    def __init__(self, generator, discriminator, d_optimizer, g_optimizer, recipe, batches):
        self.G, self.D, self.d_opt, self.g_opt = generator, discriminator, d_optimizer, g_optimizer
        self.recipe, self.batches = recipe, batches
        self.bce = BinaryCrossentropy()

    def __call__(self, iteration: int):
        """(d_loss, d_accuracy, g_loss) of iteration ``iteration`` (counted from 0)."""
        k = self.recipe.d_steps
        d = [self.d_step(iteration * k + i) for i in range(k)]
        g_loss = self.g_step()
        return sum(x[0] for x in d) / k, sum(x[1] for x in d) / k, g_loss

    def d_step(self, draw: int):
        """One discriminator update in the recipe's d_mode; returns (loss, accuracy)."""
        r, n, b = self.recipe, self.recipe.d_batch, self.batches
        real = b.real(n, draw)
        fake = self.G.forward(b.latent(n), training=r.fake_training_mode)
        targets = b.targets(n, n, real.dtype)
        self.D.zero_grad()
        if r.d_mode == "concat":  # one train_on_batch on real and fake stacked
            scores = self._d_loss(array_module(real).concatenate([real, fake]), targets, b.split(n, n))
            self._d_update()
            return scores
        mine = len(real)
        loss_real, acc_real = self._d_loss(real, targets[:mine], b.split(n))
        if r.d_mode == "separate":  # two train_on_batch calls: update on the real batch, then on the fake one
            self._d_update()
            self.D.zero_grad()
        loss_fake, acc_fake = self._d_loss(fake, targets[mine:], b.split(n))
        self._d_update()  # "sum": one update on both batches' gradients
        # "separate" reports the mean of the two train_on_batch losses; "sum" its summed loss
        loss = 0.5 * (loss_real + loss_fake) if r.d_mode == "separate" else loss_real + loss_fake
        return loss, 0.5 * (acc_real + acc_fake)

    def _d_loss(self, images, targets, share):
        """D's loss and accuracy on one batch, its gradients added to D.grads; all three
        scaled by this rank's share of the batch."""
        p = self.D.forward(images, training=True, share=share)
        loss = self.bce.forward(p, targets)
        self.D.backward(share.scale(self.bce.backward()), need_input_grad=False)  # images: no dx
        accuracy = binary_accuracy(p, targets)  # noisy or smoothed targets stay on their side of 0.5
        return share.scale(loss), share.scale(accuracy)

    def _d_update(self) -> None:
        self.d_opt.step(self.D.params, self.D.grads)

    def g_step(self):
        """One generator update through the frozen D (non-saturating loss); returns the loss."""
        r, b = self.recipe, self.batches
        z, share = b.latent(r.batch_size), b.split(r.batch_size)
        self.G.zero_grad()
        fake = self.G.forward(z, training=True, share=share)
        p = self.D.forward(fake, training=True, share=share)
        loss = self.bce.forward(p, array_module(p).full(p.shape, r.real_label, dtype=p.dtype))
        d_fake = self.D.backward(share.scale(self.bce.backward()), need_param_grads=False)
        self.G.backward(d_fake, need_input_grad=False)  # z: no dz
        self.g_opt.step(self.G.params, self.G.grads)
        return share.scale(loss)


class GANTrainer:
    """The tutorials' training loop over a run directory (``run``, or None: nothing written).
    ``world`` (scratchgan/distributed.py) makes it data-parallel: each rank trains on its
    share of every batch, and the models must have been built for it (``zoo.build(...,
    world=world)``)."""

    def __init__(self, generator, discriminator, recipe, data, seed: int, run=None, world=None,
                 data_source=None):
        self.world = world or SINGLE
        _check_data_parallel((generator, discriminator), recipe, self.world)
        self.G, self.D, self.recipe, self.seed = generator, discriminator, recipe, int(seed)
        self.batches = BatchSource(to_device(data), recipe, self.seed, self.world)
        self.d_opt, self.g_opt = recipe.make_optimizer("d"), recipe.make_optimizer("g")
        self.updates = GANUpdates(generator, discriminator, DataParallel(self.d_opt, self.world),
                                  DataParallel(self.g_opt, self.world), recipe, self.batches)
        self.metrics = Metrics(self.world)
        self.fixed_z = sample_latent(np.random.default_rng([self.seed, 2]), checkpoint.FIXED_SAMPLES, recipe)
        self.iteration = 0
        self.run = run
        self.frames = []  # (iteration, uint8 (16, H, W, C)): the fixed-z samples at every interval
        self.log_bytes = 0  # log.txt's length after the last line this run appended
        #: where the images came from ({"data": spec, "classes": [...]}), kept in the checkpoint so
        #: that a resumed run's config.json can be checked against it
        self.data_source = data_source

    @property
    def data(self):
        return self.batches.data

    @property
    def history(self) -> list:
        """One row per iteration read so far: checkpoint.METRICS."""
        return self.metrics.history

    def step(self):
        """One iteration, read at once: (d_loss, d_accuracy, g_loss) as Python floats, summed
        over the ranks and checked to be finite."""
        self.advance()
        return tuple(self.metrics.read()[1:4])

    def advance(self) -> None:
        """One iteration, its losses kept unread by ``self.metrics`` (``train`` reads them
        every tenth iteration; on a GPU nothing is read back in between)."""
        scores = self.updates(self.iteration)
        self.iteration += 1
        self.metrics.add(self.iteration, scores)

    def train(self, iterations: int, sample_interval: int, log=print, progress=None):
        """Run until ``iterations`` iterations are done in total, logging, sampling and
        checkpointing every ``sample_interval`` iterations (and at the end); then draw
        curves.png and progress.gif into the run directory. Returns iterations per second.

        ``progress``: a tqdm bar; None shows it only on a terminal, False never.
        Ctrl-C (SIGINT) or SIGTERM finishes the iteration under way, writes a checkpoint and
        raises KeyboardInterrupt: nothing is lost, and ``--resume`` continues from there."""
        start, t0 = self.iteration, time.perf_counter()
        bar = tqdm(total=iterations, initial=self.iteration, unit="it", dynamic_ncols=True,
                   disable=None if progress is None else not progress, leave=True)
        log = log if bar.disable else bar.write
        with _stop_requests() as stop:
            try:
                self._loop(iterations, sample_interval, log, stop, bar)
            finally:
                bar.close()
        if self.run is not None:
            if stop:
                self.save_checkpoint()
            self.write_pictures()
        if stop:
            log(f"interrupted: checkpoint written at iteration {self.iteration}; continue with --resume "
                f"{self.run.path}" if self.run is not None else f"interrupted at iteration {self.iteration}")
            raise KeyboardInterrupt
        elapsed = time.perf_counter() - t0
        return (self.iteration - start) / elapsed if elapsed > 0 else float("nan")

    def _loop(self, iterations, sample_interval, log, stop, bar):
        self.metrics.start_clock()
        first, started = self.iteration, time.perf_counter()
        while self.iteration < iterations:
            if self.world.any(stop):  # a signal on any rank stops every rank at the same iteration
                stop.append(True)
                break
            self.advance()
            bar.update(1)
            logged = self.iteration % sample_interval == 0 or self.iteration == iterations
            if self.metrics.due(self.iteration) or logged:
                _, d_loss, acc, g_loss, _ = self.metrics.read()
                # the recipe's batch is the global batch: images per second over all ranks
                images = (self.iteration - first) * self.recipe.batch_size / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix_str(f"D loss {d_loss:.3f}, acc {100 * acc:.1f}%, G loss {g_loss:.3f}, "
                                    f"{images:,.0f} img/s", refresh=False)
            if logged:
                self._log(f"{self.iteration} [D loss: {d_loss:f}, acc.: {100 * acc:.2f}%] [G loss: {g_loss:f}]", log)
        self.metrics.read()  # an interruption can leave some unread

    def _log(self, line: str, log) -> None:
        """The tutorial's log line; in a run directory also a sample grid and a checkpoint."""
        log(line)
        if self.run is not None:
            self.log_bytes = self.run.append_log(line)
            self.save_samples()
            self.save_checkpoint()

    def save_samples(self) -> None:
        """The fixed z's samples: a PNG grid in samples/, and a frame kept for progress.gif."""
        z = like(self.fixed_z, self.data)
        images = to_unit_range(self.G.forward(z, training=False), self.recipe.data_range)
        save_grid(images, self.run.sample_path(self.iteration), columns=4)
        self.frames.append((self.iteration, np.round(images * 255).astype(np.uint8)))
        if len(self.frames) > checkpoint.MAX_FRAMES:  # a long run's: every other one, the newest kept
            self.frames = self.frames[:-1:2] + self.frames[-1:]

    def write_pictures(self) -> None:
        """curves.png and progress.gif, drawn from the history and frames this trainer holds."""
        if len(self.history) >= 2:
            plot_curves(self.history, self.run.picture_path("curves.png"))
        if self.frames:
            grids_to_gif([(f"iteration {it:,}", frame) for it, frame in self.frames],
                         self.run.picture_path("progress.gif"))

    def state_arrays(self) -> dict:
        return checkpoint.state_of(self)

    def save_checkpoint(self, path=None) -> None:
        """checkpoint.npz and metrics.csv in the run directory (or ``path`` and metrics.csv beside it)."""
        if path is None:
            self.run.write_checkpoint(self.state_arrays(), self.history)
        else:
            Run(Path(path).parent, writer=False).write_checkpoint(self.state_arrays(), self.history, Path(path).name)

    def load_state_arrays(self, arrays, source="checkpoint") -> None:
        """Restore the training state from checkpoint fields, each checked first (scratchgan/checkpoint.py)."""
        checkpoint.restore(self, arrays, source)


def _check_data_parallel(models, recipe, world) -> None:
    """A batch too small to share, or batch normalisation not built for the ranks, refused."""
    if world.size == 1:
        return
    if recipe.d_batch < world.size:
        raise DistributedError(f"batch of {recipe.d_batch} for D over {world.size} ranks: each rank needs at least one "
                               f"row; use fewer ranks or a larger --batch-size")
    unsynchronised = [layer.name for model in models for layer in model.layers
                      if isinstance(layer, BatchNormalization) and layer.sync is not world]
    if unsynchronised:
        raise DistributedError(f"{unsynchronised[0]} normalises by this rank's rows only: build the models for the "
                               f"ranks, zoo.build(..., world=world) or BatchNormalization(sync=world)")


@contextmanager
def _stop_requests():
    """A list that gains an entry when SIGINT (Ctrl-C) or SIGTERM (kill's default) arrives:
    the loop finishes its iteration and stops. Outside the main thread signals work as usual."""
    requests, previous = [], {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, lambda number, _: requests.append(number))
        except ValueError:  # not the main thread
            break
    try:
        yield requests
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
