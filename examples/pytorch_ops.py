"""PyTorch's own per-op times for one zoo model, to set beside the bench's per-op table.

    python3 examples/pytorch_ops.py --model dcgan_bn --iterations 2 --rows 20

Runs the model's PyTorch twin (examples/pytorch_twin.py: the same layers and recipe, on
random data of the right shape) for a few warm-up iterations, then ``--iterations`` more
under ``torch.profiler``, and prints its table of ATen ops grouped by input shapes, sorted
by their own CPU time (sum over the profiled iterations: divide by ``--iterations`` for a
per-iteration figure). PyTorch's shapes are NCHW; a Conv2DTranspose layer's forward
appears as ``aten::_convolution`` with the transposed weight, its backward as
``aten::convolution_backward``. Needs PyTorch installed; scratchgan never imports it.
"""
from __future__ import annotations

import argparse
import os
import time


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dcgan_bn")
    parser.add_argument("--iterations", type=int, default=2, help="iterations profiled (after 3 warm-up ones)")
    parser.add_argument("--rows", type=int, default=20, help="table rows")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.rows < 1:
        parser.error("--iterations and --rows must be at least 1")
    import torch

    from scratchgan import bench, zoo

    twin = bench.prepare_twin_process()  # PyTorch first, the layers on numpy: as the bench's worker
    g, d, recipe = zoo.build(args.model, seed=0)
    trainer = twin.TorchGAN(g, d, recipe, seed=0, threads=os.cpu_count())
    for _ in range(3):
        trainer.step()
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.iterations):
            trainer.step()
    seconds = (time.perf_counter() - start) / args.iterations
    print(f"{args.model}: {1000 * seconds:.1f} ms per iteration under the profiler, {args.iterations} iterations "
          f"profiled, PyTorch {torch.__version__} on {torch.get_num_threads()} threads")
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.rows,
                                                              max_name_column_width=36, max_shapes_column_width=64))


if __name__ == "__main__":
    main()
