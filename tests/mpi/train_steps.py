"""Run by tests/test_distributed.py, under mpiexec or alone: train a zoo model for a few
iterations and (rank 0) save its losses and final weights, to compare 1, 2 and 3 ranks."""
import sys

import numpy as np

from scratchgan import zoo
from scratchgan.distributed import world
from scratchgan.train import GANTrainer

model, iterations, dtype, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
G, D, recipe = zoo.build(model, seed=0, world=world())  # batch norm synchronised over the ranks
recipe.override(batch_size=batch)
G.astype(dtype)
D.astype(dtype)
lo, hi = recipe.data_range
data = np.random.default_rng(0).uniform(lo, hi, (64, *recipe.image_shape)).astype(dtype)
trainer = GANTrainer(G, D, recipe, data, seed=0, world=world())
losses = [trainer.step() for _ in range(iterations)]
if world().is_root:
    np.savez(out, losses=np.array(losses, dtype=np.float64), **{k: np.asarray(v) for k, v in G.params.items()})
