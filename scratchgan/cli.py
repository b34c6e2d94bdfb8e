"""The ``scratchgan`` command: train, sample, gradcheck."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import backend
from .script import USER_ERRORS, describe
from .zoo import DATA_ORDERS, D_MODES, FIXED_FIELDS, OPTIMIZERS


#: the largest count or seed a checkpoint stores (as a signed 64-bit integer)
LARGEST = 2**63 - 1


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


def build_parser():
    # Global options are accepted before or after the command: `scratchgan --backend numba train`
    # and `scratchgan train --backend numba` alike. SUPPRESS keeps a subcommand that was not given
    # the option from overwriting the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", default=argparse.SUPPRESS,
                        help="numba (default), numpy (the readable reference) or cupy; also SCRATCHGAN_BACKEND")
    parser = argparse.ArgumentParser(prog="scratchgan", parents=[common],
                                     description="GANs from scratch: train, sample, evaluate, check gradients.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_command(name, **kwargs):
        return sub.add_parser(name, parents=[common], **kwargs)

    t = add_command("train", help="train a GAN (default: the dense GAN on the embedded MNIST)")
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
    t.add_argument("--out", help="run directory (default: runs/MODEL-TIMESTAMP)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")

    s = add_command("sample", help="draw images from a trained generator")
    s.add_argument("checkpoint", help="a checkpoint.npz (or the run directory holding one)")
    s.add_argument("--n", type=_positive, default=64, help="how many images (default 64)")
    s.add_argument("--out", required=True, help="FILE.png for a grid, FILE.npy for an (n, H, W, C) array in [0, 1]")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the latent draws (default 0)")
    s.add_argument("--nice", action="store_true",
                   help="draw 20x as many and keep the n that D rates most real (the trick of the Keras DCGAN-with-upsampling tutorial)")
    s.add_argument("--interpolate", type=_positive, metavar="STEPS",
                   help="a grid of one latent walk through n/STEPS + 1 random points, a row per leg: each row "
                        "goes from one point to the next in STEPS steps and ends where the next row starts")

    e = add_command("evaluate", help="score a generator: Frechet distance, confidence, class coverage")
    e.add_argument("checkpoint", help="a checkpoint.npz (or the run directory holding one)")
    e.add_argument("--n", type=_positive, default=5000, help="generated images to score (default 5000)")
    e.add_argument("--seed", type=_seed, default=0)
    e.add_argument("--data", default="mnist", help="real images to compare with (default: the embedded MNIST)")
    e.add_argument("--classifier", help="weights from examples/train_mnist_classifier.py (default: the shipped one)")
    e.add_argument("--json", action="store_true", help="print the scores as JSON")

    add_command("models", help="list the zoo: parameter counts, data, recipe")

    b = add_command("bench", help="time ops and training iterations per backend (and PyTorch if installed)")
    b.add_argument("--quick", action="store_true", help="mlp and a batch-32 dcgan only: under a minute")
    b.add_argument("--json", action="store_true", help="print the whole report as JSON")
    b.add_argument("--models", nargs="+", help="models to bench (default: all five)")
    b.add_argument("--backends", nargs="+", help="backends (default: numpy, numba, and cupy where a GPU is; torch and torch-cuda are added when PyTorch is installed)")
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

    g = add_command("gradcheck", help="check every layer's backward against finite differences (float64)")
    g.add_argument("--seed", type=_seed, default=0)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
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
        print(f"scratchgan {args.command}: error: {describe(err)}", file=sys.stderr)
        _stop_other_ranks(2)
        return 2
    except BaseException:
        _stop_other_ranks(1, traceback=True)
        raise


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
    from . import distributed, rundir, zoo
    from .datasets import load_dataset
    from .train import (GANTrainer, load_checkpoint, new_run_dir, physical_memory_bytes, read_config,
                        scale_images, step_memory_bytes, write_config)

    world = distributed.world()  # one process, or one of the ranks mpiexec started
    gpu_note = None
    if world.size > 1 and backend.get_backend() == "cupy":  # a GPU per rank, before any weights exist
        from .nccl import attach_gpus

        gpu_note = attach_gpus(world)
    if args.resume:
        run_dir = Path(args.resume)
        ckpt = run_dir / "checkpoint.npz"
        if not ckpt.exists():
            raise FileNotFoundError(f"{run_dir}: no checkpoint.npz to resume from")
        G, D, recipe, arrays = load_checkpoint(ckpt)
        seed = int(arrays["seed"])
        recorded = json.loads(str(arrays["data_source"])) if "data_source" in arrays else None
        if recorded is not None and not isinstance(recorded, dict):
            raise ValueError(f"{ckpt}: field 'data_source' should be a JSON object, got {recorded!r}")
        config = read_config(run_dir, recipe, seed, recorded)
    else:
        if args.seed is not None:
            seed = args.seed
        else:  # drawn once, by rank 0, for every rank
            seed = world.broadcast(int(np.random.SeedSequence().entropy % (2**31)))
        try:
            G, D, recipe = zoo.build(args.model, seed=seed, z_dim=args.z_dim)
        except MemoryError:
            raise ValueError(f"--z-dim {args.z_dim}: the {args.model} model's weights need more memory than "
                             f"this machine has") from None
        run_dir = Path(world.broadcast(str(Path(args.out) if args.out else new_run_dir(model=recipe.model))))
        if (run_dir / "checkpoint.npz").exists():
            raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        config = {"model": recipe.model, "seed": seed, "recipe": recipe.to_dict()}

    if args.resume and args.z_dim and args.z_dim != recipe.z_dim:
        raise ValueError(f"--z-dim {args.z_dim}: a resumed run keeps its latent size {recipe.z_dim}")
    recipe.override(**recipe_overrides(args))
    if args.data:
        config["data"] = args.data
    if args.classes:
        config["classes"] = args.classes.split(",")
    config.setdefault("data", recipe.data)
    need, have = step_memory_bytes(G, D, recipe), physical_memory_bytes()
    if have and need > have:
        raise ValueError(f"batch size {recipe.batch_size}: one {recipe.model} training step needs about "
                         f"{need / 2**30:.1f} GiB, more than this machine's {have / 2**30:.1f} GiB of memory")
    dataset = load_dataset(config["data"], recipe.image_shape, config.get("classes"), world)
    data = scale_images(dataset.images, recipe.data_range, recipe.image_shape)
    for path, reason in dataset.skipped[:5]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    trainer = GANTrainer(G, D, recipe, data, seed=seed, run_dir=run_dir if world.is_root else None, world=world,
                         data_source={"data": config["data"], "classes": config.get("classes")})
    if args.resume:
        trainer.load_state_arrays(arrays, source=str(ckpt))
    world.agree("the code, recipe, seed, data and starting iteration",
                distributed.digest(distributed.code_digest(), recipe.to_dict(), seed, trainer.iteration, data))
    failure = None
    if world.is_root:  # rank 0 alone writes the run directory
        try:
            lock = rundir.claim(run_dir)  # noqa: F841 (held until the process ends)
            if not args.resume and (run_dir / "checkpoint.npz").exists():  # again, now no other run can start here
                raise FileExistsError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
            for path in rundir.remove_temporaries(run_dir):
                print(f"removed {path}, left by a run that was killed", file=sys.stderr)
            if args.resume:
                rundir.trim_log(run_dir, trainer.iteration)
            config["recipe"] = recipe.to_dict()
            write_config(run_dir, config)
        except USER_ERRORS as err:
            failure = err
    message = world.broadcast(None if failure is None else describe(failure))
    if failure is not None:
        raise failure
    if message is not None:
        raise distributed.DistributedError(f"rank 0 could not start the run: {message}")
    ranks = f", {world.size} MPI ranks" if world.size > 1 else ""
    warning = distributed.oversubscription_warning() if world.size > 1 else None
    if world.is_root and warning:
        print(f"warning: {warning}", file=sys.stderr)
    if world.is_root and gpu_note:
        print(gpu_note)
    if world.is_root:
        print(f"run directory: {run_dir}  (model {recipe.model}, seed {seed}, {dataset.description}, "
              f"backend {backend.get_backend()}{ranks}, from iteration {trainer.iteration} to {recipe.iterations})")
    rate = trainer.train(recipe.iterations, recipe.sample_interval,
                         progress=False if args.no_progress or not world.is_root else None,
                         log=print if world.is_root else (lambda *_: None))
    if world.is_root:
        print(f"done: {trainer.iteration} iterations ({rate:.2f} it/s, {rate * recipe.batch_size:.0f} images/s); "
              f"samples in {run_dir / 'samples'}, curves.png, progress.gif, metrics.csv and checkpoint.npz in {run_dir}")
    return 0


def recipe_overrides(args) -> dict:
    """The recipe fields set on the command line."""
    changes = {name: getattr(args, name) for name in (
        "iterations", "batch_size", "sample_interval", "d_steps", "d_mode", "label_smoothing",
        "label_noise", "latent", "data_order")}
    changes.update(real_label=args.real_label, fake_label=args.fake_label, d_half_batch=args.d_half_batch,
                   fake_training_mode=args.fake_training_mode, data_range=args.data_range)
    settings = {"momentum": args.momentum, "nesterov": args.nesterov, "beta_1": args.beta1, "beta_2": args.beta2}
    for which in ("d", "g"):
        spec = {"name": getattr(args, f"{which}_optimizer") or args.optimizer,
                "lr": getattr(args, f"{which}_lr") or args.lr, **settings}
        spec = {k: v for k, v in spec.items() if v is not None}
        if spec:
            changes[f"{which}_optimizer"] = spec
    for item in args.set:
        field, _, value = item.partition("=")
        if not _ or not field:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set d_optimizer.epsilon=1e-8")
        name, _, key = field.partition(".")
        if name in FIXED_FIELDS:
            raise ValueError(f"--set {item!r}: {name} is the model itself; choose another --model")
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
            raise ValueError(f"--ranks benches one backend, got --backends {' '.join(args.backends)}")
        if args.backends and args.backends[0].startswith("torch"):
            raise ValueError(f"--ranks benches scratchgan's own backends (numpy, numba, cupy), not {args.backends[0]}")
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


def cmd_sample(args):
    from .images import save_grid, to_unit_range
    from .sampling import interpolate, nicest
    from .train import load_checkpoint, sample_latent

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "checkpoint.npz"
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise ValueError(f"--out must end in .png (a grid) or .npy (an array), got {out.name!r}")
    if args.nice and args.interpolate:
        raise ValueError("--nice and --interpolate do not combine: choose one")
    G, D, recipe, _ = load_checkpoint(path)
    rng = np.random.default_rng(args.seed)
    columns = None
    if args.interpolate:
        rows = max(1, args.n // args.interpolate)
        z = interpolate(sample_latent(rng, rows + 1, recipe), args.interpolate, spherical=recipe.latent == "normal")
        columns, what = args.interpolate, f"one walk through {rows + 1} latent points, {rows} rows of {args.interpolate} steps"
    elif args.nice:
        z, scores = nicest(G, D, recipe, sample_latent(rng, 20 * args.n, recipe), args.n)
        what = f"the {args.n} of {20 * args.n} samples D rates most real (D's 'real' score {scores.min():.3f}-{scores.max():.3f})"
    else:
        z, what = sample_latent(rng, args.n, recipe), f"{args.n} samples"
    images = to_unit_range(G.predict(z), recipe.data_range)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, images)
    else:
        save_grid(images, out, columns=columns)
    print(f"wrote {what} {images.shape[1:]} to {out}")
    return 0


def cmd_evaluate(args):
    from .classifier import load_classifier
    from .datasets import load_dataset
    from .evaluate import applicability, evaluate_generator
    from .train import load_checkpoint

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "checkpoint.npz"
    G, _, recipe, arrays = load_checkpoint(path)
    config_path = path.parent / "config.json"  # what the run trained on, written by train
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    note = applicability(config.get("data", recipe.data), config.get("classes"), args.data)
    classifier, facts = load_classifier(args.classifier)
    real = load_dataset(args.data, (28, 28, 1)).images
    s = evaluate_generator(G, recipe, classifier, real, n=args.n, seed=args.seed)
    s.update(model=recipe.model, iteration=int(arrays["iteration"]), data=args.data, classifier=facts,
             trained_on=config.get("data", recipe.data), applies=note is None, note=note)
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
    from .gradcheck_suite import run_suite

    failures = run_suite(seed=args.seed)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
