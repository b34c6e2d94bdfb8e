"""Dense-layer ops: NumPy's BLAS GEMMs, written into recycled arrays, and the outer product
that BLAS does badly.

    forward           y  = x @ W + b         (N, in) @ (in, units) -> (N, units)
    backward-data     dx = dy @ W^T          (N, units) @ (units, in) -> (N, in)
    backward-weights  dW = x^T @ dy          (in, N) @ (N, units) -> (in, units)

No hand-written loop beats BLAS at a GEMM; what is left to gain is around it. Outputs come
from the array pool, so a large one does not pay the page faults of fresh memory
(gemm.product; a small GEMM is NumPy's own ``@`` there). A discriminator's last layer has
one unit, and dy @ W^T is then an outer product, a GEMM with inner size 1: OpenBLAS took
1.8 ms for (256, 1) @ (1, 6272), a broadcast multiply 0.25 ms (2 cores, AVX-512).
"""
from __future__ import annotations

import numpy as np

from . import gemm, pool


def dense_forward(x, kernel, bias):
    y = gemm.product(x, kernel)
    if bias is not None:
        y += bias
    return y


def dense_backward_data(dy, kernel):
    if kernel.shape[1] == 1:  # one unit: an outer product
        dx = pool.empty((dy.shape[0], kernel.shape[0]), np.result_type(dy, kernel))
        np.multiply(dy, kernel.T, out=dx)
        return dx
    return gemm.product(dy, kernel.T)


def dense_backward_weights(dy, x):
    return gemm.product(x.T, dy)


KERNELS = {
    "dense_forward": dense_forward,
    "dense_backward_data": dense_backward_data,
    "dense_backward_weights": dense_backward_weights,
}
