"""Time the zoo's im2col and few-filter convolutions with workspaces of several sizes.

    python3 examples/chunk_sizes.py                          # dcgan's layers, 4 to 32 MB
    python3 examples/chunk_sizes.py --models dcgan dcgan_bn --sizes 8 16 --repeats 5

The numba backend runs an im2col convolution over chunks of images whose ``cols``
workspace takes about ``CHUNK_BYTES`` (kernels/numba/conv.py), and the few-filter path
(a layer with at most 4 filters, such as a generator's last 7x7 layer) over chunks whose
per-tap workspace takes about ``TAPS_CHUNK_BYTES``. Each chunk's GEMM packs the kernel
matrix and wakes the GEMM threads again, so a larger chunk pays that less often; a chunk
larger than the CPU's last-level cache goes through main memory between im2col and the
GEMM. Which size wins therefore depends on the machine: this script measures it.

For each convolution of ``--models`` (at the recipe's batch, or ``--batch``) that runs
im2col + GEMM or the few-filter GEMM, with the algorithm held to im2col: milliseconds
per call of each pass (best of ``--repeats`` after a warm-up) with each workspace size
of ``--sizes`` (MB). The layer's own constant is put back afterwards; the library's
defaults are marked with ``*``. Transposed layers are named by their adjoint convolution's
passes, as in the bench: a transposed layer's forward is that convolution's backward_data.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import scratchgan
from scratchgan import layers as L
from scratchgan import ops, zoo


def best_ms(fn, repeats) -> float:
    fn()  # warm-up: compilation, first-touch memory, the GEMMs' switch to split mode
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def conv_layers(models, batch):
    """(model, layer, batch) of every convolution of ``models``."""
    for model in models:
        g, d, recipe = zoo.build(model, seed=0)
        for net in (g, d):
            for layer in net.layers:
                if isinstance(layer, L.Conv2D | L.Conv2DTranspose):
                    yield model, layer, batch or recipe.batch_size


def passes(layer, batch, rng):
    """{pass: a call of it} on random arrays of the layer's shapes (its adjoint's, if transposed)."""
    g, k = layer.window, layer.params["kernel"]
    x = rng.standard_normal((batch, g.h, g.w, k.shape[2])).astype(np.float32)
    dy = rng.standard_normal((batch, g.ho, g.wo, k.shape[3])).astype(np.float32)
    return {"forward": lambda: ops.conv2d_forward(x, k, None, g),
            "backward_data": lambda: ops.conv2d_backward_data(dy, k, g),
            "backward_weights": lambda: ops.conv2d_backward_weights(dy, x, g)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["dcgan"], choices=list(zoo.MODELS))
    parser.add_argument("--sizes", nargs="+", type=float, default=[4, 8, 16, 32], help="workspace sizes, MB")
    parser.add_argument("--batch", type=int, default=None, help="images per call (default: the recipe's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per pass and size (default 3)")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    if any(size <= 0 for size in args.sizes):
        parser.error("--sizes must be positive")
    scratchgan.set_backend("numba")
    from scratchgan.kernels.numba import conv  # the backend's module, loaded by set_backend

    saved_algo = scratchgan.get_conv_algo()
    saved = {"CHUNK_BYTES": conv.CHUNK_BYTES, "TAPS_CHUNK_BYTES": conv.TAPS_CHUNK_BYTES}
    scratchgan.set_conv_algo("im2col")
    rng = np.random.default_rng(0)
    head = "".join(f"{size:>9g} MB " for size in args.sizes)
    print(f"{'model':<15}{'layer (as a convolution)':<44}{'path':<12}{'pass':<18}{head}")
    try:
        for model, layer, batch in conv_layers(args.models, args.batch):
            g, k = layer.window, layer.params["kernel"]
            few_filters = k.shape[3] <= conv.FEW_FILTERS
            constant = "TAPS_CHUNK_BYTES" if few_filters else "CHUNK_BYTES"
            shape = (f"{batch}x{g.h}x{g.w}->{g.ho}x{g.wo}, {k.shape[2]} -> {k.shape[3]}, "
                     f"k{g.kh}x{g.kw} s{g.sh}")
            for name, call in passes(layer, batch, rng).items():
                cells = []
                for size in args.sizes:
                    setattr(conv, constant, int(size * (1 << 20)))
                    mark = "*" if int(size * (1 << 20)) == saved[constant] else " "
                    cells.append(f"{best_ms(call, args.repeats):>11.1f}{mark}")
                setattr(conv, constant, saved[constant])
                path = "few-filter" if few_filters else "im2col"
                print(f"{model:<15}{shape:<44}{path:<12}{name:<18}{''.join(cells)}", flush=True)
    finally:
        for constant, value in saved.items():
            setattr(conv, constant, value)
        scratchgan.set_conv_algo(saved_algo)
    print("ms per call, best of the repeats; * the library's default size "
          f"(im2col {saved['CHUNK_BYTES'] >> 20} MB, few-filter {saved['TAPS_CHUNK_BYTES'] >> 20} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
