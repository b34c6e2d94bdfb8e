"""How close the numba backend's memory-bound ops come to the copy bandwidth, and what fusing
two of them would save: ``python3 examples/memory_bound_ops.py``.

Each op runs alone at a zoo layer's shape (the recipe's batch, or ``--batch``), serially
and on all of Numba's threads; the best of ``--repeats`` calls counts. Its rate is the
bench's: bytes of every array read or written once, over the time (``scratchgan bench``
reports the same ops inside training the same way). The roofs are the copy bandwidth of
one core and of all cores, measured first (a kernel running serially cannot pass the first).

Then two pairs of ops that always run back to back in the zoo, each against a single pass
that does both (written here, not part of the library): batch norm's training forward
followed by LeakyReLU, and a convolution's bias add (the ``y += bias`` after the GEMM)
followed by LeakyReLU. The difference is what a fused kernel would save per call. Last,
the one fusion the library does: a transposed convolution's bias added where col2im
starts its sums, against a separate ``y += bias`` (dcgan's 4x4 stride-2 layer, 128 -> 128).

``--ops-only`` prints the ops' table alone. It runs against an older checkout too (put that
checkout first on PYTHONPATH; docs/performance.md shows how), to compare kernels before and
after a change on one machine.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from numba import njit, prange

from scratchgan import backend, ops
from scratchgan.bench import op_bytes
from scratchgan.kernels.numba import threads
from scratchgan.machine import copy_bandwidth
from scratchgan.ops.geometry import transpose_window, window

#: (op, the zoo layer it comes from, its input shape at the recipe's batch)
CASES = [
    ("leaky_relu_forward", "dcgan generator, last LeakyReLU", (256, 28, 28, 128)),
    ("leaky_relu_backward", "dcgan generator, last LeakyReLU", (256, 28, 28, 128)),
    ("tanh_forward", "dcgan_upsample discriminator, first tanh", (256, 28, 28, 64)),
    ("tanh_backward", "dcgan_upsample discriminator, first tanh", (256, 28, 28, 64)),
    ("batchnorm_forward_train", "dcgan_bn, 14x14x64 batch norm", (256, 14, 14, 64)),
    ("batchnorm_backward_train", "dcgan_bn, 14x14x64 batch norm", (256, 14, 14, 64)),
    ("batchnorm_forward_train", "dcgan_bn, dense batch norm", (256, 12544)),
    ("bias_backward", "dcgan generator, last transposed conv", (256, 28, 28, 128)),
    ("maxpool_forward", "dcgan_upsample discriminator, 2x2 pool", (256, 28, 28, 64)),
    ("maxpool_backward", "dcgan_upsample discriminator, 2x2 pool", (256, 28, 28, 64)),
    ("upsample_nearest_forward", "dcgan_upsample generator, 2x upsampling", (128, 14, 14, 64)),
    ("upsample_nearest_backward", "dcgan_upsample generator, 2x upsampling", (128, 14, 14, 64)),
    ("adam_update", "mlp discriminator, first Dense kernel", (784, 128)),
    ("adam_update", "cifar_frog generator, 5x5 256->256 kernel", (5, 5, 256, 256)),
]
#: ops whose shape is a parameter's, not a batch's (--batch leaves it)
PARAMETER_OPS = ("adam_update",)


def _arguments(name, shape, rng):
    """The op's arguments for an input of ``shape`` (float32, as in training)."""
    x = rng.standard_normal(shape, dtype=np.float32)
    c = shape[-1]
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    pool_window = window(shape[1:3], (2, 2), (2, 2), "valid") if len(shape) == 4 else None
    if name == "leaky_relu_backward":
        return x, x > 0, 0.2
    if name == "tanh_backward":
        return x, np.tanh(x)
    if name == "batchnorm_backward_train":
        return x, x, np.ones(c, np.float32), gamma
    if name == "batchnorm_forward_train":
        return x, gamma, beta, 1e-3
    if name == "maxpool_backward":
        y, argmax = ops.maxpool_forward(x, pool_window)
        return y.copy(), argmax.copy(), pool_window
    if name == "maxpool_forward":
        return x, pool_window
    if name.startswith("upsample_nearest"):
        if name.endswith("backward"):
            return rng.standard_normal((shape[0], 2 * shape[1], 2 * shape[2], c), dtype=np.float32), (2, 2)
        return x, (2, 2)
    if name == "leaky_relu_forward":
        return x, 0.2
    if name == "adam_update":  # parameter, gradient, m, v (v >= 0); the zoo's Adam(2e-4, 0.5) at step 10
        return x, rng.standard_normal(shape, dtype=np.float32), np.zeros_like(x), np.ones_like(x), 2e-4, 0.5, 0.999, 1e-7, 10
    return (x,)


def best_ms(call, repeats):
    call()  # compiled and warm; pooled outputs allocated
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def on_threads(parallel: bool) -> None:
    """Every kernel on all of Numba's threads, or every kernel serial."""
    threads.PARALLEL_MIN_WORK = 0 if parallel else threads.NEVER
    threads.threads_for(1)


@njit(parallel=True)  # not cached: the tests load this file as a module of another name
def _normalize_leaky(x, mean, inv_std, gamma, beta, slope, out, xhat, mask):
    """Batch norm's normalising pass with LeakyReLU applied before anything is written."""
    m, c = x.shape
    for r in prange(m):
        for ch in range(c):
            h = (x[r, ch] - mean[ch]) * inv_std[ch]
            xhat[r, ch] = h
            v = h * gamma[ch] + beta[ch]
            mask[r, ch] = v > 0
            out[r, ch] = v if v > 0 else v * slope


@njit(parallel=True)  # not cached: the tests load this file as a module of another name
def _bias_leaky(y, bias, slope, out, mask):
    m, c = y.shape
    for r in prange(m):
        for ch in range(c):
            v = y[r, ch] + bias[ch]
            mask[r, ch] = v > 0
            out[r, ch] = v if v > 0 else v * slope


def fusion(shape, repeats, rng):
    """{pair: (ms as two ops, ms as one pass)} at ``shape``."""
    from scratchgan.kernels.numba import reductions  # imported here: --ops-only runs on older trees too

    x = rng.standard_normal(shape, dtype=np.float32)
    c = shape[-1]
    rows = x.reshape(-1, c)
    gamma, beta, slope = np.ones(c, np.float32), np.zeros(c, np.float32), np.float32(0.2)
    out, xhat, mask = np.empty_like(rows), np.empty_like(rows), np.empty(rows.shape, np.bool_)

    def bn_then_leaky():
        y = ops.batchnorm_forward_train(x, gamma, beta, 1e-3)[0]
        ops.leaky_relu_forward(y, 0.2)

    def bn_leaky_fused():  # the same statistics, then one pass
        shift = rows[0].copy()
        s1, s2 = reductions.channel_sums(rows, shift, rows, shift, reductions.row_blocks(len(rows)))
        mean = (shift + s1 / len(rows)).astype(np.float32)
        inv_std = (1 / np.sqrt(np.maximum(s2 / len(rows) - (s1 / len(rows)) ** 2, 0) + 1e-3)).astype(np.float32)
        _normalize_leaky(rows, mean, inv_std, gamma, beta, slope, out, xhat, mask)

    gemm_out = np.empty_like(rows)

    def bias_then_leaky():
        np.copyto(gemm_out, rows)  # stands for the GEMM writing the convolution's output
        np.add(gemm_out, beta, out=gemm_out)
        ops.leaky_relu_forward(gemm_out, 0.2)

    def bias_leaky_fused():
        np.copyto(gemm_out, rows)
        _bias_leaky(gemm_out, beta, slope, out, mask)

    return {"batch norm (training) then LeakyReLU": (best_ms(bn_then_leaky, repeats), best_ms(bn_leaky_fused, repeats)),
            "bias add then LeakyReLU": (best_ms(bias_then_leaky, repeats), best_ms(bias_leaky_fused, repeats))}


def transposed_bias(n, repeats, rng):
    """(ms with a separate bias pass, ms with the bias in col2im) for dcgan's 14x14 -> 28x28
    transposed convolution on n images."""
    x = rng.standard_normal((n, 14, 14, 128), dtype=np.float32)
    kernel = rng.standard_normal((4, 4, 128, 128), dtype=np.float32)
    bias = rng.standard_normal(128).astype(np.float32)
    g = transpose_window((14, 14), (4, 4), (2, 2), "same")

    def separate():
        y = ops.conv2d_backward_data(x, kernel, g)
        y += bias

    return best_ms(separate, repeats), best_ms(lambda: ops.conv2d_backward_data(x, kernel, g, bias=bias), repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=None, help="images per call (default: each layer's recipe batch)")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per op and way (default 9)")
    parser.add_argument("--ops-only", action="store_true",
                        help="only the ops' table (it runs on a checkout of an older commit too, to compare)")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    backend.set_backend("numba")
    rng = np.random.default_rng(0)
    saved = threads.PARALLEL_MIN_WORK
    try:
        on_threads(False)
        one_core = copy_bandwidth()
        on_threads(True)
        all_cores = copy_bandwidth()
        print(f"copy bandwidth: {one_core:.1f} GB/s on one core, {all_cores:.1f} GB/s on {threads._all} threads")
        print(f"{'op':<26}{'shape':<18}{'serial ms':>10}{'GB/s':>7}{'%all':>6}{'parallel ms':>13}{'GB/s':>7}{'%all':>6}  layer")
        for name, layer, shape in CASES:
            if name not in PARAMETER_OPS:
                shape = (args.batch or shape[0], *shape[1:])
            arguments = _arguments(name, shape, rng)
            op = getattr(ops, name)
            nbytes = op_bytes(name, arguments, op(*arguments))
            cells = []
            for parallel in (False, True):
                on_threads(parallel)
                ms = best_ms(lambda: op(*arguments), args.repeats)
                rate = nbytes / ms / 1e6
                cells.append(f"{ms:>10.2f}{rate:>7.1f}{100 * rate / all_cores:>5.0f}%")
            print(f"{name:<26}{'x'.join(map(str, shape)):<18}{cells[0]}   {cells[1]}  {layer}")
        if args.ops_only:
            return 0
        for shape in [(args.batch or 256, 14, 14, 64), (args.batch or 256, 28, 28, 128)]:
            on_threads(shape[0] * shape[1] * shape[2] * shape[3] >= saved)  # as training runs it
            for pair, (two, one) in fusion(shape, args.repeats, rng).items():
                print(f"fusing {pair} at {'x'.join(map(str, shape))}: {two:.2f} ms as two ops, "
                      f"{one:.2f} ms as one pass (saves {two - one:.2f} ms per call)")
        threads.PARALLEL_MIN_WORK = saved
        separate, folded = transposed_bias(args.batch or 256, args.repeats, rng)
        print(f"transposed convolution {args.batch or 256}x14x14x128 -> 28x28x128, its bias: {separate:.2f} ms as "
              f"a separate pass, {folded:.2f} ms in col2im (saves {separate - folded:.2f} ms per call)")
    finally:
        threads.PARALLEL_MIN_WORK = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
