"""Dense-layer ops: NumPy's BLAS GEMMs, written into recycled arrays, and the outer product
that BLAS does badly.

    forward           y  = x @ W + b         (N, in) @ (in, units) -> (N, units)
    backward-data     dx = dy @ W^T          (N, units) @ (units, in) -> (N, in)
    backward-weights  dW = x^T @ dy          (in, N) @ (N, units) -> (in, units)

No hand-written loop beats BLAS at a GEMM; what is left to gain is around it. Outputs come
from the array pool, so a large one does not pay the page faults of fresh memory; a GEMM
that gemm.py and the pool would leave as it is (``_plain``) is NumPy's own ``@``. A
discriminator's last layer has one unit, and dy @ W^T is then an outer product, a GEMM
with inner size 1: OpenBLAS took 1.8 ms for (256, 1) @ (1, 6272), a broadcast multiply
0.25 ms (measured on 2 cores, AVX-512).
"""
from __future__ import annotations

import numpy as np

from . import gemm, pool


def _plain(rows, inner, columns, itemsize) -> bool:
    """Whether gemm.py would run this GEMM as NumPy's matmul unchanged (the process does not
    split GEMMs yet, and this one is under gemm.SWITCH_FLOPS) into an array the pool would
    not keep (under pool.MIN_BYTES). NumPy's own ``@`` then does the same for a microsecond
    or two less bookkeeping per call, as much as the mlp's smallest GEMMs take: the
    discriminator's one-unit head, (128, 128) @ (128, 1), took 3.2-3.6 us through the pool
    and gemm.py, 1.9-2.1 us as ``@`` (examples/ops_against_numpy.py)."""
    return (not gemm.splitting() and 2 * rows * inner * columns < gemm.SWITCH_FLOPS
            and rows * columns * itemsize < pool.MIN_BYTES)


def dense_forward(x, kernel, bias):
    if _plain(x.shape[0], x.shape[1], kernel.shape[1], x.itemsize):
        y = x @ kernel
        if bias is not None:
            y += bias
        return y
    y = pool.empty((x.shape[0], kernel.shape[1]), np.result_type(x, kernel))
    gemm.matmul(x, kernel, y)
    if bias is not None:
        y += bias
    return y


def dense_backward_data(dy, kernel):
    if kernel.shape[1] > 1 and _plain(dy.shape[0], kernel.shape[1], kernel.shape[0], dy.itemsize):
        return dy @ kernel.T
    dx = pool.empty((dy.shape[0], kernel.shape[0]), np.result_type(dy, kernel))
    if kernel.shape[1] == 1:  # one unit: an outer product
        np.multiply(dy, kernel.T, out=dx)
    else:
        gemm.matmul(dy, kernel.T, dx)
    return dx


def dense_backward_weights(dy, x):
    if _plain(x.shape[1], x.shape[0], dy.shape[1], x.itemsize):
        return x.T @ dy
    dk = pool.empty((x.shape[1], dy.shape[1]), np.result_type(dy, x))
    gemm.matmul(x.T, dy, dk)
    return dk


KERNELS = {
    "dense_forward": dense_forward,
    "dense_backward_data": dense_backward_data,
    "dense_backward_weights": dense_backward_weights,
}
