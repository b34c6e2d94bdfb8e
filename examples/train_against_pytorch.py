"""Whole training processes, scratchgan against a plain PyTorch loop of the same model.

    python3 examples/train_against_pytorch.py --model mlp --short 200 --long 1200 --rounds 2

Each side runs as a fresh process twice, for ``--short`` and for ``--long`` iterations;
the difference of the two wall-clock times over the difference of the iteration counts
is the time per iteration with start-up (imports, compilation, data loading) cancelled.
scratchgan's side is the real command, ``python3 -m scratchgan train`` (logging, sample
grids and checkpoints included, as a user runs it); PyTorch's is the loop of
``examples/pytorch_twin.py`` (the same layers, recipe and optimizers, on random data of
the right shape) with nothing else. Needs PyTorch installed; scratchgan never imports it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

TORCH_LOOP = """
import sys
sys.path.insert(0, {here!r})
from pytorch_twin import TorchGAN
from scratchgan import zoo
g, d, recipe = zoo.build({model!r}, seed=0)
trainer = TorchGAN(g, d, recipe, seed=0, threads={threads})
for _ in range({iterations}):
    trainer.step()
"""


def seconds(command, env=None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def scratchgan_run(model, iterations, backend, conv_algo) -> float:
    with tempfile.TemporaryDirectory() as out:
        return seconds([sys.executable, "-m", "scratchgan", "--backend", backend, "--conv-algo", conv_algo,
                        "train", "--model", model, "--iterations", str(iterations), "--seed", "0",
                        "--no-progress", "--out", os.path.join(out, "run")])


def torch_run(model, iterations) -> float:
    code = TORCH_LOOP.format(here=str(HERE), model=model, threads=os.cpu_count(), iterations=iterations)
    return seconds([sys.executable, "-c", code])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=2, help="repeat the four runs, interleaved")
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--conv-algo", default="auto")
    args = parser.parse_args(argv)
    if args.long <= args.short:
        parser.error("--long must be larger than --short")
    for round_ in range(1, args.rounds + 1):
        ours = [scratchgan_run(args.model, n, args.backend, args.conv_algo) for n in (args.short, args.long)]
        theirs = [torch_run(args.model, n) for n in (args.short, args.long)]
        per_ours = 1000 * (ours[1] - ours[0]) / (args.long - args.short)
        per_theirs = 1000 * (theirs[1] - theirs[0]) / (args.long - args.short)
        print(f"round {round_}: {args.model}, ms per iteration: scratchgan {args.backend}/{args.conv_algo} "
              f"{per_ours:.2f}, PyTorch {per_theirs:.2f}: scratchgan is {per_theirs / per_ours:.2f}x PyTorch "
              f"(whole processes: {ours[0]:.1f} s and {ours[1]:.1f} s against {theirs[0]:.1f} s and {theirs[1]:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main()
