"""The Numba CPU backend: ``KERNELS`` maps op names (those of scratchgan/ops) to functions
with the NumPy reference's signature; ``scratchgan.set_backend("numba")`` registers them.
One module per op family, each with its own KERNELS; nothing here imports scratchgan's op
registry (the Winograd kernels take their transform matrices from scratchgan/ops/winograd.py,
the one place they are derived).

Dense layers and the GEMMs inside convolutions run in NumPy's BLAS: no hand-written loop
beats it. The kernels do what BLAS cannot: layout transforms (im2col/col2im without
padded copies), few-filter convolutions as GEMMs over the input's pixels, element-wise chains in one pass,
channel reductions, scatter/gather, and fused optimizer updates.
"""
from __future__ import annotations

import os

# Numba's parallel loops run on OpenMP threads that, by default, spin for a while after
# each loop; NumPy's OpenBLAS threads then fight them for the cores (on 2 cores, small
# GEMMs after a parallel kernel ran 10-40x slower; README, "Backends", shows how to see
# it). Passive waiting (threads sleep at once) removes that; set before OpenMP starts.
#: OMP_WAIT_POLICY as the process was started with it (None: unset), for child processes
#: that must run as the user's own would (the bench's PyTorch worker)
USER_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import activations, batchnorm, conv, dense, dropout, losses, optim, pooling, reductions, winograd  # noqa: E402

MODULES = (activations, batchnorm, conv, dense, dropout, losses, optim, pooling, reductions, winograd)

#: ops left to NumPy on purpose, because NumPy is as fast or faster (measured): the logistic
#: loss on its (batch, 1) predictions
NUMPY_IS_FASTER = ("bce_logits_forward", "bce_logits_backward")
#: ops whose calls on fewer values than this (their first array's size) run the NumPy
#: reference, where a kernel launch and its argument checks cost more than the arithmetic:
#: the mlp discriminator's one-unit sigmoid backward, 128 values, took 2.1 us as a kernel
#: and 1.0 us in NumPy (examples/ops_against_numpy.py); the float32 results are the same
#: bit for bit (tests/test_kernels.py)
NUMPY_BELOW = {"tanh_backward": 1024, "sigmoid_backward": 1024}


#: op name -> kernel, every family's table merged
KERNELS = {name: fn for module in MODULES for name, fn in module.KERNELS.items()}
