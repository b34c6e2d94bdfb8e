"""The ``scratchgan`` command: train, sample, gradcheck."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import backend, budget, conv_algo, zoo
from .checkpoint import LARGEST
from .errors import ScratchganError, UsageError, one_line
from .rundir import Run
from .script import USER_ERRORS, describe
from .zoo import DATA_ORDERS, D_MODES, FIXED_FIELDS, OPTIMIZERS


def _positive(value):
    n = int(value)
    if not 1 <= n <= LARGEST:
        raise argparse.ArgumentTypeError(f"must be a positive integer up to {LARGEST}, got {value}")
    return n


def _seconds(value):
    t = float(value)
    if not 0 <= t <= 60:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to 60, got {value}")
    return t


def _seed(value):
    n = int(value)
    if not 0 <= n <= LARGEST:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {LARGEST}, got {value}")
    return n


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with an argument error as one line and a hint, not the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message, 2000)} (see: {self.prog} --help)\n")


def build_parser():
    # Global options are accepted before or after the command: `scratchgan --backend numba train`
    # and `scratchgan train --backend numba` alike. SUPPRESS keeps a subcommand that was not given
    # the option from overwriting the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", default=argparse.SUPPRESS,
                        help="numba (default), numpy (the readable reference) or cupy; also SCRATCHGAN_BACKEND")
    common.add_argument("--conv-algo", default=argparse.SUPPRESS, choices=conv_algo.MODES,
                        help="how convolutions run: auto (default: measure im2col and Winograd per layer, keep "
                             "the fastest), im2col, or winograd (stride-1 3x3 and 5x5 layers, stride-2 5x5 ones); "
                             "also SCRATCHGAN_CONV_ALGO")
    common.add_argument("--memory-budget", default=argparse.SUPPRESS, metavar="SIZE",
                        help="the most memory a size from input may ask for, e.g. 4G (default: 80%% of RAM; "
                             "also SCRATCHGAN_MEMORY_BUDGET)")
    parser = _Parser(prog="scratchgan", parents=[common],
                                     description="GANs from scratch: train, sample, evaluate, check gradients.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_command(name, **kwargs):
        return sub.add_parser(name, parents=[common], **kwargs)

    _add_train(add_command("train", help="train a GAN (default: the dense GAN on the embedded MNIST)"))
    _add_sample(add_command("sample", help="draw images from a trained generator"))
    _add_evaluate(add_command("evaluate", help="score a generator: Frechet distance, confidence, class coverage"))
    add_command("models", help="list the zoo: parameter counts, data, recipe")
    _add_bench(add_command("bench", help="time ops and training iterations per backend (and PyTorch if installed)"))
    _add_gradcheck(add_command("gradcheck", help="check every layer's backward against finite differences (float64)"))
    return parser


def _add_gradcheck(g) -> None:
    g.add_argument("--seed", type=_seed, default=0)
    g.add_argument("--layer", metavar="MODULE:CLASS",
                   help="check your own layer instead: my_layers.py:Blur (a file) or my_layers:Blur (a module)")
    g.add_argument("--input-shape", type=_shape, metavar="N,...", help="with --layer: the input's shape, batch first")
    g.add_argument("--args", type=_json_object, default={}, metavar="JSON",
                   help='with --layer: the constructor\'s keyword arguments, e.g. \'{"units": 3}\'')
    g.add_argument("--threshold", type=float, default=1e-7, help="with --layer: the largest judged error (default 1e-7)")
    g.add_argument("--inference", action="store_true", help="with --layer: check the inference-mode forward")


def _shape(value):
    try:
        shape = tuple(int(n) for n in value.replace("x", ",").split(",") if n.strip())
    except ValueError:
        shape = ()
    if not shape or any(n < 1 for n in shape) or np.prod(shape, dtype=np.int64) > 10**6:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 2,8,8,3 (at most a million values), got {value!r}")
    return shape


def _json_object(value):
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"units\": 3}}', got {value!r}")
    return parsed


def _add_train(t) -> None:
    """train's options; the recipe overrides in a group of their own."""
    t.add_argument("--model", default="mlp", help="model name (default: mlp)")
    t.add_argument("--iterations", type=_positive, help="total iterations (default: the recipe's, 20000 for mlp)")
    t.add_argument("--batch-size", type=_positive, help="batch size (default: the recipe's, 128 for mlp)")
    t.add_argument("--sample-interval", type=_positive, help="log, sample and checkpoint every N iterations (default 1000)")
    t.add_argument("--seed", type=_seed, help="random seed (default: drawn, printed and stored)")
    t.add_argument("--data",
                   help="default: the recipe's. mnist (the embedded 10,000 test images), mnist-full (60,000, "
                        "downloaded once), fashion-mnist, cifar10, a CIFAR-10 .tar.gz, or a folder: IDX files, "
                        "CIFAR-10 batches, or any PNG/JPEG pictures (resized to the model)")
    t.add_argument("--class", dest="classes", metavar="NAMES",
                   help="keep these classes only, comma-separated names or indices (e.g. frog, or 3,5)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (the log lines stay)")
    t.add_argument("--out", help="run directory (default: runs/MODEL-TIMESTAMP)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    _add_recipe_overrides(t)


def _add_recipe_overrides(t) -> None:
    """Every recipe field as an option of train."""
    r = t.add_argument_group("recipe overrides (default: the model's tutorial recipe; see `scratchgan models`)")
    r.add_argument("--lr", type=float, help="learning rate of both optimizers")
    r.add_argument("--d-lr", type=float, help="learning rate of D's optimizer")
    r.add_argument("--g-lr", type=float, help="learning rate of G's optimizer")
    r.add_argument("--d-steps", type=_positive, help="D updates per G update")
    r.add_argument("--d-mode", choices=D_MODES, help="how D sees real and fake batches")
    r.add_argument("--label-smoothing", type=float, help="one-sided smoothing of D's real targets")
    r.add_argument("--label-noise", type=float, help="U(0, x) noise added to D's targets")
    r.add_argument("--latent", choices=("normal", "uniform"), help="z ~ N(0, 1) or U(-1, 1)")
    r.add_argument("--z-dim", type=_positive, help="latent size (a new run only)")
    r.add_argument("--data-order", choices=DATA_ORDERS, help="how real batches are drawn")
    r.add_argument("--real-label", type=float, help="D's target for real images (G is trained towards it)")
    r.add_argument("--fake-label", type=float, help="D's target for fake images")
    r.add_argument("--d-half-batch", action=argparse.BooleanOptionalAction,
                   help="D sees batch/2 real + batch/2 fake (else a batch of each)")
    r.add_argument("--fake-training-mode", action=argparse.BooleanOptionalAction,
                   help="G makes D's fakes in training mode (batch statistics); no: Keras's predict()")
    r.add_argument("--data-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="scale images to [LOW, HIGH]")
    r.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="both optimizers; one other than the recipe's starts from its own (Keras's) defaults")
    r.add_argument("--d-optimizer", choices=OPTIMIZERS, help="D's optimizer")
    r.add_argument("--g-optimizer", choices=OPTIMIZERS, help="G's optimizer")
    r.add_argument("--momentum", type=float, help="SGD momentum (both optimizers)")
    r.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="SGD Nesterov momentum (both)")
    r.add_argument("--beta1", type=float, help="Adam beta_1 (both optimizers)")
    r.add_argument("--beta2", type=float, help="Adam beta_2 (both optimizers)")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other recipe field, repeatable: e.g. --set d_optimizer.epsilon=1e-8, "
                        "--set g_optimizer.clipvalue=1 (values are read as JSON, else as text)")


def _add_sample(s) -> None:
    s.add_argument("checkpoint", help="a checkpoint.npz (or the run directory holding one)")
    s.add_argument("--n", type=_positive, default=64, help="how many images (default 64)")
    s.add_argument("--out", required=True, help="FILE.png for a grid, FILE.npy for an (n, H, W, C) array in [0, 1]")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the latent draws (default 0)")
    s.add_argument("--nice", action="store_true",
                   help="draw 20x as many and keep the n that D rates most real (the trick of the Keras DCGAN-with-upsampling tutorial)")
    s.add_argument("--interpolate", type=_positive, metavar="STEPS",
                   help="a grid of one latent walk through n/STEPS + 1 random points, a row per leg: each row "
                        "goes from one point to the next in STEPS steps and ends where the next row starts")


def _add_evaluate(e) -> None:
    e.add_argument("checkpoint", help="a checkpoint.npz (or the run directory holding one)")
    e.add_argument("--n", type=_positive, default=5000, help="generated images to score (default 5000)")
    e.add_argument("--seed", type=_seed, default=0)
    e.add_argument("--data", default="mnist", help="real images to compare with (default: the embedded MNIST)")
    e.add_argument("--classifier", help="weights from examples/train_mnist_classifier.py (default: the shipped one)")
    e.add_argument("--json", action="store_true", help="print the scores as JSON")


def _add_bench(b) -> None:
    b.add_argument("--quick", action="store_true", help="mlp and a batch-32 dcgan only: under a minute")
    b.add_argument("--json", action="store_true", help="print the whole report as JSON")
    b.add_argument("--models", nargs="+", help="models to bench (default: all five)")
    b.add_argument("--backends", nargs="+", help="backends (default: numpy, numba, and cupy where a GPU is; torch and torch-cuda are added when PyTorch is installed); "
                   "numba/im2col, numba/winograd or numba/auto also fixes the conv algorithm of that worker, to compare algorithms in one run")
    b.add_argument("--iterations", type=_positive, help="timed turns per backend (default 3; mlp: 10 turns of 20 iterations)")
    b.add_argument("--top", type=int, default=10, help="op rows per model (default 10)")
    b.add_argument("--batch-sizes", nargs="+", type=_positive,
                   help="bench each model at these batch sizes (e.g. 64 256 1024; default: the recipe's)")
    b.add_argument("--plot", metavar="PNG", help="draw every op on a roofline (measured peak and bandwidth) into this PNG")
    b.add_argument("--settle", type=_seconds, default=None, metavar="SECONDS",
                   help="pause before each worker's turn, so the previous worker's spinning BLAS/OpenMP threads "
                        "have gone idle (default 0.5)")
    b.add_argument("--ranks", nargs="+", type=_positive, metavar="N",
                   help="instead: data-parallel training over N MPI ranks for each N given (e.g. 1 2 4): images "
                        "per second and the share of a step in collectives, on the first --backends (default numba)")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "memory_budget", None):
            budget.set_memory_budget(args.memory_budget)
        if getattr(args, "conv_algo", None):
            conv_algo.set_conv_algo(args.conv_algo)
            os.environ[conv_algo.VARIABLE] = args.conv_algo  # the bench's worker processes inherit it
        if getattr(args, "backend", None):
            backend.set_backend(args.backend)
        else:
            backend.get_backend()
        return {"train": cmd_train, "sample": cmd_sample, "gradcheck": cmd_gradcheck,
                "models": cmd_models, "bench": cmd_bench,
                "evaluate": cmd_evaluate}[args.command](args)
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as err:
        print(f"scratchgan {args.command}: error: {one_line(describe(err), 2000)}", file=sys.stderr)
        if not _raised_on_every_rank(err):
            _stop_other_ranks(2)
        return 2
    except BaseException:
        _stop_other_ranks(1, traceback=True)
        raise


def _raised_on_every_rank(err) -> bool:
    """An error every rank raised together (a failed agreement): each exits by itself."""
    if "mpi4py" not in sys.modules:
        return False
    from .distributed import RanksDisagree

    return isinstance(err, RanksDisagree)


def _stop_other_ranks(code: int, traceback: bool = False) -> None:
    """Under MPI, a rank that fails stops every rank (none is left waiting in a collective).
    Only where mpi4py is already in use: a single process never imports it."""
    if "mpi4py" in sys.modules:
        from .distributed import world

        if world().size > 1:
            if traceback:
                import traceback as tb

                tb.print_exc()
            sys.stderr.flush()
            world().abort(code)


def cmd_train(args):
    """Read and check everything first (checkpoint, config, recipe, memory, data), then open
    the run directory, then train: nothing is written before every input has passed."""
    from . import distributed
    from .train import GANTrainer

    world = distributed.world()  # one process, or one of the ranks mpiexec started
    gpu_note = _one_gpu_per_rank(world)
    plan = _resume_plan(args, world) if args.resume else _new_plan(args, world)
    dataset, data = _training_data(args, plan, world)
    trainer = GANTrainer(plan.G, plan.D, plan.recipe, data, seed=plan.seed, world=world,
                         data_source={"data": plan.config["data"], "classes": plan.config.get("classes")})
    if plan.arrays is not None:
        _restore(trainer, plan)
    world.agree("the code, recipe, seed, data and starting iteration", distributed.digest(
        distributed.code_digest(), plan.recipe.to_dict(), plan.seed, trainer.iteration, data))
    trainer.run = _open_run_directory(world, plan, trainer)  # rank 0's; None on the others
    say = print if world.is_root else _quiet
    _announce(say, world, plan, dataset, trainer, gpu_note)
    start = trainer.iteration
    rate = trainer.train(plan.recipe.iterations, plan.recipe.sample_interval, log=say,
                         progress=False if args.no_progress or not world.is_root else None)
    say(f"done: {trainer.iteration - start} iterations, {start} to {trainer.iteration} ({rate:.2f} it/s, "
        f"{rate * plan.recipe.batch_size:.0f} images/s); samples in {plan.path / 'samples'}, curves.png, "
        f"progress.gif, metrics.csv and checkpoint.npz in {plan.path}")
    return 0


def _quiet(*_args) -> None:
    """Where the ranks other than 0 print: nowhere."""


class _Plan(SimpleNamespace):
    """What a training command will do, read and checked before anything is written:
    recipe, seed, models (G, D), config (what config.json will hold), the run directory's
    path, the resumed Run and its checkpoint's arrays (None for a new run)."""


def _one_gpu_per_rank(world):
    """On the cupy backend under MPI: this rank's GPU (and NCCL), before any weights exist."""
    if world.size == 1 or backend.get_backend() != "cupy":
        return None
    from .nccl import attach_gpus

    return attach_gpus(world)


def _resume_plan(args, world) -> _Plan:
    """A resumed run: its checkpoint and config.json read and checked, the overrides applied."""
    run = Run.resume(args.resume, writer=world.is_root)
    recipe, arrays = run.read_checkpoint()
    G, D, _ = zoo.build(recipe.model, z_dim=recipe.z_dim, world=world)  # the weights: the checkpoint's
    seed = int(arrays["seed"])
    recorded = json.loads(str(arrays["data_source"])) if "data_source" in arrays else None
    config = run.read_config(recipe, seed, recorded)
    _override(recipe, args, resumed=True)
    return _Plan(recipe=recipe, seed=seed, G=G, D=D, config=config, path=run.path, run=run, arrays=arrays)


def _new_plan(args, world) -> _Plan:
    """A new run: the recipe with its overrides, a seed (drawn by rank 0 unless given), a path."""
    from .rundir import new_run_path, refuse_existing_run

    seed = args.seed if args.seed is not None else world.broadcast(int(np.random.SeedSequence().entropy % 2**31))
    recipe = _override(zoo.default_recipe(args.model), args, resumed=False)
    path = Path(world.broadcast(str(Path(args.out) if args.out else new_run_path(model=recipe.model))))
    refuse_existing_run(path)  # before anything is built or written
    G, D, _ = zoo.build(recipe.model, seed=seed, z_dim=recipe.z_dim, world=world)
    config = {"model": recipe.model, "seed": seed}
    return _Plan(recipe=recipe, seed=seed, G=G, D=D, config=config, path=path, run=None, arrays=None)


def _training_data(args, plan, world):
    """(the data set the command line, the resumed run or the recipe names, its images scaled
    to the model's range); the files it skipped are reported."""
    from .datasets import load_dataset
    from .train import scale_images

    given = {"data": args.data, "classes": args.classes and args.classes.split(",")}
    plan.config.update({k: v for k, v in given.items() if v})
    plan.config.setdefault("data", plan.recipe.data)
    dataset = load_dataset(plan.config["data"], plan.recipe.image_shape, plan.config.get("classes"), world.spread)
    for skipped, reason in dataset.skipped[:5]:
        print(f"skipped {one_line(skipped)}: {reason}", file=sys.stderr)
    return dataset, scale_images(dataset.images, plan.recipe.data_range, plan.recipe.image_shape)


def _restore(trainer, plan) -> None:
    """The resumed run's training state into ``trainer``; a target already reached refused."""
    trainer.load_state_arrays(plan.arrays, source=str(plan.path / "checkpoint.npz"))
    if plan.recipe.iterations <= trainer.iteration:
        raise UsageError(f"the run in {one_line(plan.path)} is at iteration {trainer.iteration:,} already; "
                         f"give --iterations above it to continue")


def _override(recipe, args, resumed: bool):
    """``recipe`` with the command line's overrides (checked: a resumed run keeps its latent
    size), and the memory a training run of it needs checked against the budget."""
    changes = recipe_overrides(args)
    if resumed and changes.get("z_dim") not in (None, recipe.z_dim):
        raise UsageError(f"z_dim {changes['z_dim']}: a resumed run keeps its latent size {recipe.z_dim}")
    recipe.override(**changes)
    zoo.require_training_memory(recipe)
    return recipe


def _open_run_directory(world, plan, trainer):
    """Rank 0 creates (or cleans up the resumed) run directory and writes config.json; every
    rank learns whether that worked. Returns rank 0's Run, None on the other ranks."""
    from . import distributed

    failure, run = None, None
    if world.is_root:
        try:
            run = plan.run or Run.create(plan.path)
            if plan.run is not None:
                for leftover in run.remove_temporaries():
                    print(f"removed {one_line(leftover)}, left by a run that was killed", file=sys.stderr)
                if trainer.log_bytes:
                    run.cut_log(trainer.log_bytes)
            run.write_config({**plan.config, "recipe": plan.recipe.to_dict()})
        except ScratchganError as err:
            failure = err
    message = world.broadcast(None if failure is None else str(failure))
    if failure is not None:
        raise failure
    if message is not None:
        raise distributed.DistributedError(f"rank 0 could not start the run: {message}")
    return run


def _announce(say, world, plan, dataset, trainer, gpu_note) -> None:
    from . import distributed

    warning = distributed.oversubscription_warning() if world.size > 1 else None
    if warning and world.is_root:
        print(f"warning: {warning}", file=sys.stderr)
    if gpu_note:
        say(gpu_note)
    ranks = f", {world.size} MPI ranks" if world.size > 1 else ""
    say(f"run directory: {one_line(plan.path)}  (model {plan.recipe.model}, seed {plan.seed}, {dataset.description}, "
        f"backend {backend.get_backend()}{ranks}, from iteration {trainer.iteration} to {plan.recipe.iterations})")


def recipe_overrides(args) -> dict:
    """The recipe fields set on the command line."""
    changes = {name: getattr(args, name) for name in (
        "iterations", "batch_size", "sample_interval", "d_steps", "d_mode", "label_smoothing",
        "label_noise", "latent", "data_order", "z_dim")}
    changes.update(real_label=args.real_label, fake_label=args.fake_label, d_half_batch=args.d_half_batch,
                   fake_training_mode=args.fake_training_mode, data_range=args.data_range)
    settings = {"momentum": args.momentum, "nesterov": args.nesterov, "beta_1": args.beta1, "beta_2": args.beta2}
    for which in ("d", "g"):
        own_lr = getattr(args, f"{which}_lr")  # --d-lr 0 is a value (refused by the optimizer), not "unset"
        spec = {"name": getattr(args, f"{which}_optimizer") or args.optimizer,
                "lr": own_lr if own_lr is not None else args.lr, **settings}
        spec = {k: v for k, v in spec.items() if v is not None}
        if spec:
            changes[f"{which}_optimizer"] = spec
    for item in args.set:
        field, _, value = item.partition("=")
        if not _ or not field:
            raise UsageError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set d_optimizer.epsilon=1e-8")
        name, _, key = field.partition(".")
        if name in FIXED_FIELDS:
            raise UsageError(f"--set {item!r}: {name} is the model itself; choose another --model")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # plain text, e.g. SGD or sequential
        if key:
            changes[name] = {**changes.get(name, {}), key: value}
        else:
            changes[name] = value
    return changes


def cmd_bench(args):
    from .bench import run

    if args.ranks:
        from . import bench_ranks

        if args.backends and len(args.backends) > 1:
            raise UsageError(f"--ranks benches one backend, got --backends {' '.join(args.backends)}")
        if args.backends and args.backends[0].startswith("torch"):
            raise UsageError(f"--ranks benches scratchgan's own backends (numpy, numba, cupy), not {args.backends[0]}")
        bench_ranks.run(args.ranks, models=args.models or (["mlp"] if args.quick else None),
                        backend_name=args.backends[0] if args.backends else None, iterations=args.iterations,
                        batch_sizes=args.batch_sizes, as_json=args.json)
        return 0
    run(quick=args.quick, models=args.models, backends=args.backends, iterations=args.iterations,
        top=args.top, as_json=args.json, batch_sizes=args.batch_sizes, plot=args.plot,
        **({} if args.settle is None else {"settle": args.settle}))
    return 0


def cmd_models(args):
    from . import zoo

    print(f"{'model':<16}{'G params':>12}{'D params':>12}  {'data':<14}{'image':<10}{'batch':>6}  optimizers")
    for name in zoo.MODELS:
        g, d, r = zoo.build(name)
        opt = r.d_optimizer
        print(f"{name:<16}{g.count_params():>12,}{d.count_params():>12,}  {r.data:<14}"
              f"{'x'.join(map(str, r.image_shape)):<10}{r.batch_size:>6}  {opt['name']}(lr {opt['lr']:g})")
    print()
    for name, build in zoo.MODELS.items():  # the first sentence of each builder's docstring: the tutorial
        print(f"{name:<16}{build.__doc__.split('. ')[0].strip()}")
    print("\nEach tutorial's source, networks and recipe: docs/tutorials.md in the source repository.")
    return 0


def _checkpoint_of(argument):
    """(path, in_run) of the checkpoint a command names: a run directory's own (checked as
    a run's file: one link), or a file the user named."""
    path = Path(argument)
    if path.is_dir():
        return path / "checkpoint.npz", True
    return path, False


def cmd_sample(args):
    from . import checkpoint
    from .images import save_grid, to_unit_range
    from .safe_io import atomic_write
    from .sampling import interpolate, nicest
    from .batches import sample_latent

    out = Path(args.out)
    kind = out.suffix.lower()
    if kind not in (".png", ".npy"):
        raise UsageError(f"--out must end in .png (a grid) or .npy (an array), got {one_line(out.name)!r}")
    if args.nice and args.interpolate:
        raise UsageError("--nice and --interpolate do not combine: choose one")
    path, in_run = _checkpoint_of(args.checkpoint)
    recipe, arrays = checkpoint.read(path, in_run=in_run, typed=not in_run)
    _require_sample_memory(recipe, args.n * (20 if args.nice else 1), kind)
    G, D = checkpoint.build_models(recipe, arrays, str(path))
    rng = np.random.default_rng(args.seed)
    columns = None
    if args.interpolate:
        rows = max(1, args.n // args.interpolate)
        z = interpolate(sample_latent(rng, rows + 1, recipe), args.interpolate, spherical=recipe.latent == "normal")
        columns = args.interpolate
        what = f"one walk through {rows + 1} latent points, {rows} rows of {args.interpolate} steps"
        if rows * args.interpolate != args.n:
            print(f"note: a walk fills whole rows of --interpolate {args.interpolate} steps: {rows * args.interpolate} "
                  f"images, not --n {args.n} (give a multiple of {args.interpolate})", file=sys.stderr)
    elif args.nice:
        z, scores = nicest(G, D, recipe, sample_latent(rng, 20 * args.n, recipe), args.n)
        what = f"the {args.n} of {20 * args.n} samples D rates most real (D's 'real' score {scores.min():.3f}-{scores.max():.3f})"
    else:
        z, what = sample_latent(rng, args.n, recipe), f"{args.n} samples"
    images = to_unit_range(G.predict(z), recipe.data_range)
    if kind == ".npy":
        with atomic_write(out) as f:  # the name as typed, whatever the case of its extension
            np.save(f, images)
    else:
        save_grid(images, out, columns=columns)
    print(f"wrote {what} {images.shape[1:]} to {one_line(out)}")
    return 0


def _require_sample_memory(recipe, n: int, kind: str) -> None:
    """The memory ``sample`` needs for n images: latents, G's outputs in float32 and, for a
    grid, its canvas and the 3x enlarged picture."""
    from . import budget

    h, w, c = recipe.image_shape
    per_image = 4 * (recipe.z_dim + 2 * h * w * c) + (22 * (h + 2) * (w + 2) * c if kind == ".png" else 0)
    budget.require(n * per_image, f"{n:,} samples of {recipe.model}", "--n")


def cmd_evaluate(args):
    from . import budget, checkpoint
    from .classifier import load_classifier
    from .datasets import load_dataset
    from .evaluate import applicability, evaluate_generator
    from .rundir import read_config_file

    path, in_run = _checkpoint_of(args.checkpoint)
    budget.require(args.n * 28 * 28 * 4 * 4, f"scoring {args.n:,} samples", "--n")
    recipe, arrays = checkpoint.read(path, in_run=in_run, typed=not in_run)
    G, _ = checkpoint.build_models(recipe, arrays, str(path))
    config_path = path.parent / "config.json"  # what the run trained on, written by train
    config = read_config_file(config_path) if os.path.lexists(config_path) else {}
    trained_on, classes = config.get("data", recipe.data), config.get("classes")
    note = applicability(trained_on, classes, args.data)
    classifier, facts = load_classifier(args.classifier)
    real = load_dataset(args.data, (28, 28, 1)).images
    s = evaluate_generator(G, recipe, classifier, real, n=args.n, seed=args.seed, progress=None)  # a bar on a terminal
    s.update(model=recipe.model, iteration=int(arrays["iteration"]), data=args.data, classifier=facts,
             trained_on=trained_on, applies=note is None, note=note)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    if note:
        print(f"note: {note}")
    held_out = facts.get("held_out_accuracy")
    print(f"{recipe.model} at iteration {s['iteration']:,}: {s['samples']} samples against as many real "
          f"images of {args.data}" + (f" (classifier held-out accuracy {100 * held_out:.1f}%)" if held_out else ""))
    print(f"  Frechet distance      {s['frechet_distance']:9.3f}   real vs real floor {s['frechet_distance_real']:.3f}")
    print(f"  confidence            {s['confidence']:9.3f}   real {s['confidence_real']:.3f}")
    print(f"  class evenness        {s['evenness']:9.3f}   real {s['evenness_real']:.3f}")
    print("  class shares (%)      " + " ".join(f"{i}:{100 * x:.0f}" for i, x in enumerate(s["class_shares"])))
    return 0


def cmd_gradcheck(args):
    from .gradcheck_suite import check_user_layer, run_suite

    if args.layer:
        if not args.input_shape:
            raise UsageError("--layer needs --input-shape, e.g. --input-shape 2,8,8,3 (batch first)")
        passed = check_user_layer(args.layer, args.input_shape, args.args, seed=args.seed, threshold=args.threshold,
                                  training=not args.inference)
        return 0 if passed else 1
    if args.input_shape or args.args or args.inference:
        raise UsageError("--input-shape, --args and --inference go with --layer")
    failures = run_suite(seed=args.seed)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
