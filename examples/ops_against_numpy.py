"""Every op call of one training iteration, timed alone on the numba backend and on the NumPy reference.

    python3 examples/ops_against_numpy.py                      # the mlp
    python3 examples/ops_against_numpy.py --model dcgan_bn --batch 32

One iteration of the model's recipe runs on the numba backend with the op registry's
observer on, which records each op call's arguments. Each distinct call (op and argument
shapes) is then replayed alone, as the numba backend runs it (its kernel, or the reference
where the backend's NUMPY_BELOW table sends a tiny call) and as the NumPy reference does,
in alternating rounds, and the fastest of ``--repeats`` rounds counts (a round repeats the
call for about 2 ms; Python's garbage collector is off while rounds are timed). Each
implementation works on its own copies of the arguments (the
optimizers' updates work in place).

Inside a training step a call also pays for what ran before it (caches that a GEMM
evicted, BLAS threads that spin): the bench's per-op table shows calls there, this
script shows what each implementation costs by itself. The last line counts the calls
where numba is slower than NumPy by more than 10% and 0.5 us: the GEMMs, which both run
as the same BLAS call, differ by up to 10% between two rounds on a shared host.

A last paragraph splits one iteration: the whole iteration; the sum of its op calls, each
alone; and the iteration with every op call answered by the output it recorded (no
kernel runs: what is left is the layers, losses and optimizers around the ops, and the
batch draws). What the first exceeds the other two by is what the ops lose to each other
inside a step.
"""
from __future__ import annotations

import argparse
import gc
import time
from contextlib import contextmanager

import numpy as np

import scratchgan
from scratchgan import zoo
from scratchgan.bench import call_signature
from scratchgan.ops import registry
from scratchgan.train import GANTrainer


def numba_trainer(model, batch):
    """A GANTrainer of ``model`` (its recipe, ``batch`` if given) on the numba backend, on random data."""
    scratchgan.set_backend("numba")
    g, d, recipe = zoo.build(model, seed=0)
    if batch:
        recipe.override(batch_size=batch)
    lo, hi = recipe.data_range
    data = np.random.default_rng(0).uniform(lo, hi, (4 * recipe.batch_size, *recipe.image_shape))
    return GANTrainer(g, d, recipe, data.astype(np.float32), seed=0)


def record_one_iteration(model, batch):
    """[(op name, argument copies)] of one training iteration of ``model`` on the numba backend."""
    trainer = numba_trainer(model, batch)
    trainer.advance()  # compilation, the array pool, the conv algorithms' timing
    calls = []
    registry.set_observer(lambda name, args, out, seconds: calls.append(
        (name, [a.copy() if isinstance(a, np.ndarray) else a for a in args])))
    try:
        trainer.advance()
    finally:
        registry.set_observer(None)
    return calls


@contextmanager
def no_garbage_collection():
    """Python's cyclic collector off while timing (as timeit does): a collection's length
    depends on every object of the process, not on the step being timed."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def best_us(calls, repeats) -> list[float]:
    """Microseconds per call of each of ``calls``, the fastest of ``repeats`` rounds; the
    rounds of the calls alternate, so that the host's drift hits all of them alike."""
    counts = []
    for call in calls:
        call()
        start = time.perf_counter()
        call()
        counts.append(max(1, int(0.002 / max(time.perf_counter() - start, 1e-7))))
    best = [float("inf")] * len(calls)
    with no_garbage_collection():
        for _ in range(repeats):
            for i, (call, count) in enumerate(zip(calls, counts)):
                start = time.perf_counter()
                for _ in range(count):
                    call()
                best[i] = min(best[i], (time.perf_counter() - start) / count)
    return [1e6 * b for b in best]


def iteration_split(model, batch, repeats):
    """(whole iteration us, the iteration with every op call answered by its recorded output
    us, op calls per iteration), each the fastest of ``repeats`` alternating rounds."""
    trainer = numba_trainer(model, batch)
    for _ in range(3):
        trainer.advance()
    outputs, names = [], []
    registry.set_observer(lambda name, args, out, seconds: (outputs.append(out), names.append(name)))
    try:
        trainer.advance()
    finally:
        registry.set_observer(None)
    kernels = {name: registry.implementations(name).get("numba") for name in set(names)}  # None: the reference
    position = [0]

    def answer(*args, **kwargs):  # the outputs in the order the iteration asked for them
        i = position[0]
        position[0] = (i + 1) % len(outputs)
        return outputs[i]

    def rounds(count):
        start = time.perf_counter()
        for _ in range(count):
            trainer.advance()
        return (time.perf_counter() - start) / count

    count = max(1, int(0.05 / rounds(1)))
    best = [float("inf"), float("inf")]
    try:
        with no_garbage_collection():
            for _ in range(repeats):
                for which in (0, 1):
                    for name, kernel in kernels.items():
                        registry.register(name, "numba", answer if which else kernel)
                    position[0] = 0
                    best[which] = min(best[which], rounds(count))
    finally:
        for name, kernel in kernels.items():
            if kernel is None:
                registry.OPS[name].pop("numba", None)
            else:
                registry.register(name, "numba", kernel)
    return 1e6 * best[0], 1e6 * best[1], len(outputs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mlp", choices=list(zoo.MODELS))
    parser.add_argument("--batch", type=int, default=None, help="the recipe's batch size unless given")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per call and implementation (default 7)")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    before = scratchgan.backend.get_backend()
    try:
        ops_alone = report(record_one_iteration(args.model, args.batch), args.repeats)
        whole, without_ops, count = iteration_split(args.model, args.batch, args.repeats)
        print(f"one iteration: {whole:.0f} us; its {count} op calls, each alone on numba: {ops_alone:.0f} us; "
              f"with every op call answered by its recorded output: {without_ops:.0f} us; "
              f"what the ops lose to each other inside the step: {whole - ops_alone - without_ops:.0f} us")
    finally:
        scratchgan.set_backend(before)
    return 0


def report(calls, repeats) -> float:
    """Print each distinct call's time on both implementations, and the count of slower ones;
    return the sum over all ``calls`` of numba's time alone (us)."""
    print(f"{'op':<26}{'shapes':<44}{'calls':>6}{'numba us':>11}{'numpy us':>11}{'numba vs numpy':>16}")
    slower, seen, total = [], {}, 0.0
    for name, call_args in calls:
        key = (name, call_signature(call_args))
        seen[key] = seen.get(key, 0) + 1
    done = set()
    for name, call_args in calls:
        key = (name, call_signature(call_args))
        if key in done:
            continue
        done.add(key)
        impls = registry.implementations(name)
        runs = []
        for backend_name in ("numba", "numpy"):  # each on its own copies: updates work in place
            impl, own = impls.get(backend_name, impls["numpy"]), [
                a.copy() if isinstance(a, np.ndarray) else a for a in call_args]
            runs.append(lambda impl=impl, own=own: impl(*own))
        numba_us, numpy_us = best_us(runs, repeats)
        total += seen[key] * numba_us
        ratio = numpy_us / numba_us
        if numba_us > 1.1 * numpy_us and numba_us - numpy_us > 0.5:
            slower.append(key)
        print(f"{name:<26}{key[1][:43]:<44}{seen[key]:>6}{numba_us:>11.1f}{numpy_us:>11.1f}{ratio:>15.2f}x")
    print(f"numba slower than numpy by more than 10% and 0.5 us: {len(slower)} of {len(done)} calls"
          + "".join(f"\n  {name} {shapes}" for name, shapes in slower))
    return total


if __name__ == "__main__":
    raise SystemExit(main())
