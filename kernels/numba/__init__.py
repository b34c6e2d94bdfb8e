"""The Numba CPU backend: importing this package registers its kernels for the ops of
scratchgan/ops under the backend name "numba". One module per op family; each module's
KERNELS maps op names to functions with the NumPy reference's signature.

Dense layers and the GEMMs inside convolutions stay with NumPy's BLAS: no hand-written
loop beats it. The kernels do what BLAS cannot: layout transforms (im2col/col2im without
padded copies), direct convolutions for few filters, element-wise chains in one pass,
channel reductions, scatter/gather, and fused optimizer updates.
"""
from __future__ import annotations

from scratchgan.ops.registry import register

from . import activations, batchnorm, conv, dropout, losses, optim, pooling

MODULES = (activations, batchnorm, conv, dropout, losses, optim, pooling)


def register_all() -> None:
    for module in MODULES:
        for name, fn in module.KERNELS.items():
            register(name, "numba", fn)


register_all()
