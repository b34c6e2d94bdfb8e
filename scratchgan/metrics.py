"""The training losses, read to the host a few iterations at a time.

A training step leaves its D loss, D accuracy and G loss as 0-d arrays where the model
lives: on a GPU they stay there, so the GPU never waits for the host. :class:`Metrics`
keeps them until the loop wants numbers (every ``every`` iterations and at log points),
then, for all the iterations it holds at once:

1. stacks them and reads them to the host in one transfer;
2. sums them over the ranks of data-parallel training, where each rank holds its
   weighted share of every value (one Allreduce; nothing to do for one process);
3. checks that every loss is finite, naming the first iteration that is not;
4. appends them to ``history``: rows (iteration, d_loss, d_accuracy, g_loss, seconds),
   the columns of metrics.csv (scratchgan.checkpoint.METRICS),
   ``seconds`` counting the run's training time, resumed runs included.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .distributed import SINGLE
from .errors import TrainingError
from .xp import array_module, to_host


class Metrics:
    def __init__(self, world=SINGLE, every: int = 10):
        self.world, self.every = world, every
        self.history: list[tuple] = []
        self._pending = []  # (iteration, (d_loss, d_accuracy, g_loss), seconds), not yet read
        self._t0 = None

    def start_clock(self) -> None:
        """Count seconds on from the history's last row (0 for a new run)."""
        self._t0 = time.perf_counter() - (self.history[-1][-1] if self.history else 0.0)

    def add(self, iteration: int, scores) -> None:
        """Keep an iteration's (d_loss, d_accuracy, g_loss), read nothing."""
        if self._t0 is None:
            self.start_clock()
        self._pending.append((iteration, scores, time.perf_counter() - self._t0))

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0

    def read(self):
        """Read every kept iteration into the history (steps 1-4 above); return the last row."""
        if self._pending:
            values = [v for _, scores, _ in self._pending for v in scores]
            flat = to_host(array_module(*values).stack(values)).astype(np.float64)  # a fresh, writable copy
            flat = self.world.allreduce_sum(flat).tolist()
            rows = [(it, *flat[3 * i:3 * i + 3], seconds) for i, (it, _, seconds) in enumerate(self._pending)]
            self._pending.clear()
            for it, d_loss, _, g_loss, _ in rows:
                if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
                    raise TrainingError(f"iteration {it}: loss is not finite (D {d_loss}, G {g_loss}); "
                                        f"the last good checkpoint is kept")
            self.history.extend(rows)
        return self.history[-1] if self.history else None
