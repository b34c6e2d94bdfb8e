"""Time im2col against Winograd on every zoo layer it could serve, and take single calls apart.

    python3 examples/winograd_layers.py                      # every zoo layer Winograd serves, all passes
    python3 examples/winograd_layers.py --models cifar_frog --parts
    python3 examples/winograd_layers.py --models dcgan_bn --strided   # the layers it cannot serve

For each convolution of the zoo that Winograd serves (stride 1 with a 3x3 or 5x5 kernel;
stride 2 with a 5x5 kernel, as F(m x m, 3x3) on 2x2 blocks; thin ones included, which
``auto`` does not time), at the recipe's batch, on the numba backend: milliseconds per
call of each pass with im2col, F(2x2) and F(4x4) (best of ``--repeats`` after a warm-up),
as ``scratchgan.set_conv_algo("auto")`` would measure them. ``--parts`` also
splits the F(4x4) forward into its input transform, GEMMs and output transform (by
timing the kernel module's functions while it runs) and gives the input transform's GB/s
(the bytes it reads and writes once), for the stride-1 layers. ``--strided`` instead takes
apart the im2col calls of the strided layers with enough channels to run im2col + GEMM:
each pass's time, the part in im2col or col2im, the part in GEMMs, and the GEMMs' rate
against the SGEMM peak measured in the same run; what a faster convolution there could
still gain without doing fewer multiplications. A transposed layer is named by its
adjoint convolution's passes, as everywhere here: its forward is that convolution's
backward_data.
"""
from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import numpy as np

import scratchgan
from scratchgan import layers as L
from scratchgan import ops, zoo
from scratchgan.conv_algo import winograd_op, winograd_refusal, winograd_tile
from scratchgan.ops.winograd import serves, tile


def best_ms(fn, *args, repeats=3) -> float:
    fn(*args)  # warm-up: compilation, first-touch memory
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def zoo_layers(models):
    """(model, layer, batch) of every convolution of ``models`` Winograd serves."""
    for model in models:
        g, d, recipe = zoo.build(model, seed=0)
        for net in (g, d):
            for layer in net.layers:
                if isinstance(layer, L.Conv2D | L.Conv2DTranspose) and winograd_refusal(layer.window) is None:
                    yield model, layer, recipe.batch_size


def pass_arguments(layer, batch, rng):
    """The three passes' arguments as the im2col ops take them (the window's input side is a
    transposed layer's output)."""
    g = layer.window
    k = layer.params["kernel"]
    x = rng.standard_normal((batch, g.h, g.w, k.shape[2])).astype(np.float32)
    dy = rng.standard_normal((batch, g.ho, g.wo, k.shape[3])).astype(np.float32)
    return {"forward": (x, k, None), "backward_data": (dy, k), "backward_weights": (dy, x)}


@contextmanager
def timed(module, names, totals):
    """Add the seconds each of ``module``'s functions ``names`` takes to ``totals`` while inside."""
    saved = {name: getattr(module, name) for name in names}

    def wrap(name, fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
            return out
        return run

    for name, fn in saved.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)


def strided_layers(models):
    """(model, layer, batch) of every strided convolution that runs im2col + GEMM (more than
    a few channels and filters on both sides)."""
    from scratchgan.kernels.numba import conv as conv_kernels

    for model in models:
        g, d, recipe = zoo.build(model, seed=0)
        for net in (g, d):
            for layer in net.layers:
                if isinstance(layer, L.Conv2D | L.Conv2DTranspose) and serves(layer.window) is not None:
                    c, f = layer.params["kernel"].shape[2:]
                    if min(c, f) > max(conv_kernels.FEW_CHANNELS, conv_kernels.FEW_FILTERS):
                        yield model, layer, recipe.batch_size


def im2col_parts(layer, pass_name, pass_args, peak, repeats):
    """One im2col pass taken apart: (total ms, im2col or col2im ms, GEMM ms, GEMM % of peak)."""
    from scratchgan.kernels.numba import conv as conv_kernels

    op = getattr(conv_kernels, "conv2d_" + pass_name)
    op(*pass_args, layer.window)  # warm-up
    best = None
    for _ in range(repeats):
        totals = {}
        with timed(conv_kernels, ("im2col", "col2im"), totals), timed(conv_kernels.gemm, ("matmul",), totals):
            start = time.perf_counter()
            op(*pass_args, layer.window)
            total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, totals.get("im2col", 0.0) + totals.get("col2im", 0.0), totals["matmul"])
    g, k = layer.window, layer.params["kernel"]
    flops = 2 * pass_args[0].shape[0] * g.ho * g.wo * k.size
    total, folding, gemms = best
    return 1000 * total, 1000 * folding, 1000 * gemms, 100 * flops / gemms / 1e9 / peak


def parts(layer, args):
    """ms of the F(4x4) forward's pieces, and the input transform's GB/s."""
    from scratchgan.kernels.numba import winograd as kernels

    x, k, _ = args
    t = tile(4, layer.window.kh)
    totals = {}
    kernels.winograd_conv2d_forward(x, k, None, layer.window, t)  # warm-up
    with timed(kernels, ("transform_tiles", "untransform_tiles"), totals), timed(kernels.gemm, ("matmul",), totals):
        start = time.perf_counter()
        kernels.winograd_conv2d_forward(x, k, None, layer.window, t)
        total = time.perf_counter() - start
    tiles = x.shape[0] * -(-layer.window.ho // 4) * -(-layer.window.wo // 4)
    moved = x.nbytes + tiles * t.alpha**2 * x.shape[3] * x.itemsize
    return (f"F(4x4) forward {1000 * total:.1f} ms: input transform {1000 * totals['transform_tiles']:.1f} ms "
            f"({moved / totals['transform_tiles'] / 1e9:.1f} GB/s), GEMMs {1000 * totals['matmul']:.1f} ms, "
            f"output transform {1000 * totals['untransform_tiles']:.1f} ms")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dcgan_bn", "dcgan_upsample", "cifar_frog"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, help="instead of each recipe's batch size")
    parser.add_argument("--parts", action="store_true", help="also split each F(4x4) forward into its pieces")
    parser.add_argument("--strided", action="store_true",
                        help="instead: take apart the im2col calls of the layers Winograd cannot serve")
    args = parser.parse_args(argv)
    scratchgan.set_backend("numba")
    rng = np.random.default_rng(0)
    if args.strided:
        from scratchgan.machine import sgemm_peak

        peak = sgemm_peak()
        print(f"SGEMM peak {peak:.0f} GFLOP/s")
        print(f"{'model':<15}{'layer: as a convolution':<72}{'pass':<18}{'ms':>8}{'im2col':>8}{'GEMMs':>8}"
              "  GEMMs % of peak")
        for model, layer, batch in strided_layers(args.models):
            batch = args.batch or batch
            k = layer.params["kernel"]
            what = f"{layer.name}: {batch}x{layer.window} {k.shape[2]}->{k.shape[3]}"
            for pass_name, pass_args in pass_arguments(layer, batch, rng).items():
                total, folding, gemms, share = im2col_parts(layer, pass_name, pass_args, peak, args.repeats)
                print(f"{model:<15}{what[:71]:<72}{pass_name:<18}{total:>8.1f}{folding:>8.1f}{gemms:>8.1f}  {share:.0f}%",
                      flush=True)
        return
    print(f"{'model':<15}{'layer (as a convolution)':<44}{'pass':<18}{'im2col':>8}{'F(2x2)':>8}{'F(4x4)':>8}  ms")
    for model, layer, batch in zoo_layers(args.models):
        if layer.window is None or "kernel" not in layer.params:
            continue
        batch = args.batch or batch
        arguments = pass_arguments(layer, batch, rng)
        k = layer.params["kernel"]
        what = f"{batch}x{layer.window} {k.shape[2]}->{k.shape[3]}"
        for pass_name, pass_args in arguments.items():
            im2col_op = getattr(ops, "conv2d_" + pass_name)
            winograd = winograd_op(pass_name, layer.window)
            cells = [best_ms(im2col_op, *pass_args, layer.window, repeats=args.repeats)]
            cells += [best_ms(winograd, *pass_args, layer.window, winograd_tile(m, layer.window), repeats=args.repeats)
                      for m in (2, 4)]
            print(f"{model:<15}{what[:43]:<44}{pass_name:<18}" + "".join(f"{c:>8.1f}" for c in cells), flush=True)
        if args.parts and layer.window.sh == 1:
            print(f"{'':<15}{parts(layer, arguments['forward'])}", flush=True)


if __name__ == "__main__":
    main()
