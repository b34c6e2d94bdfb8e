"""How the package is put together: no import cycles, kernels independent of the library.

Every import statement counts, at module level or inside a function: a cycle through a
function-level import is still a loop a reader has to untangle.
"""
import ast
import inspect
import cProfile
import pstats
from pathlib import Path

import numpy as np
import pytest

import scratchgan
from scratchgan import ops, zoo

ROOT = Path(__file__).resolve().parent.parent


def _modules():
    """{dotted name: path} of every module of the installed package (kernels/ is scratchgan.kernels)."""
    found = {}
    for base, prefix in ((ROOT / "scratchgan", "scratchgan"), (ROOT / "kernels", "scratchgan.kernels")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def _imports(name, path, known):
    """The package's modules that module ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
    return {t for t in targets if t in known and t != name}


def _graph():
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert "scratchgan.ops.registry" in graph and "scratchgan.kernels.numba.conv" in graph
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_kernels_import_nothing_from_the_library():
    """Kernels are plain functions of arrays and numbers; the library imports them, never the reverse."""
    graph = _graph()
    kernels = {name for name in graph if name.startswith("scratchgan.kernels")}
    leaks = {name: sorted(graph[name] - kernels) for name in kernels if graph[name] - kernels}
    assert leaks == {}


def test_the_registry_and_xp_import_no_backend():
    graph = _graph()
    assert "scratchgan.backend" not in graph["scratchgan.ops.registry"]
    assert graph["scratchgan.xp"] == set()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_generator_step_reaches_each_op_in_one_hop(backend):
    """Profile one dcgan_bn generator step (forward and backward): every op is called by a
    layer through its dispatcher (or by a composed op's reference: the stride-2 Winograd
    passes call the stride-1 ones), each implementation only by the dispatcher, and nothing
    asks for the backend or recomputes a convolution's geometry on the way."""
    scratchgan.set_backend(backend)
    g, _, _ = zoo.build("dcgan_bn", seed=0)
    z = np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32)
    g.backward(np.ones_like(g.forward(z)))  # compile and build first
    profile = cProfile.Profile()
    profile.enable()
    g.zero_grad()
    g.backward(np.ones_like(g.forward(z)))
    profile.disable()
    stats = pstats.Stats(profile).stats
    implementations = {(fn.__code__.co_filename, fn.__code__.co_name)
                       for impls in ops.OPS.values() for name, fn in impls.items() if name == backend or name == "numpy"}
    dispatched = [(key, callers) for key, (_, _, _, _, callers) in stats.items() if (key[0], key[2]) in implementations]
    assert len(dispatched) >= 10  # the step does run its ops through implementations
    for (file, _, name), callers in dispatched:
        assert {c[2] for c in callers} == {"dispatch"}, f"{name} in {file} is called by {callers}"
    layer_files = str(ROOT / "scratchgan" / "layers")
    dispatch_callers = {c for key, (_, _, _, _, callers) in stats.items() if key[2] == "dispatch" for c in callers}
    assert dispatch_callers and all(c[0].startswith(layer_files) or c[2] in ops.registry.COMPOSED
                                    for c in dispatch_callers), dispatch_callers
    called = {key[2] for key in stats}
    assert not called & {"get_backend", "backend_module", "window", "transpose_window", "conv_output_length"}


def test_constants_the_kernels_keep_for_themselves_match_the_library():
    """Kernels do not import the library, so a constant they need is written twice: checked here."""
    from scratchgan.kernels.numba import losses as numba_losses
    from scratchgan.ops import losses as reference_losses

    assert numba_losses.EPSILON == reference_losses.EPSILON
    for name in ("bce_forward", "bce_backward"):
        default = inspect.signature(getattr(numba_losses, name)).parameters["eps"].default
        assert default == inspect.signature(getattr(reference_losses, name).reference).parameters["eps"].default


# --- the training loop ------------------------------------------------------------------------
RANK_WORDS = {"world", "size", "rank", "is_root", "comm", "sum_gradients", "allreduce_sum"}


def _functions(path):
    """(qualified name, node) of every function and method in a file."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(ast.parse(path.read_text()), "")
    return found


def _words(node) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
           {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def test_the_training_step_never_mentions_the_ranks():
    """GANUpdates (train.py) is the tutorials' algorithm: data parallelism reaches it only as
    a Share handed to forward and scale; no world, rank or size, no collective."""
    step = {name: node for name, node in _functions(ROOT / "scratchgan" / "train.py") if name.startswith("GANUpdates.")}
    assert {"GANUpdates.d_step", "GANUpdates.g_step", "GANUpdates.__call__", "GANUpdates._d_loss"} <= set(step)
    for name, node in step.items():
        assert not _words(node) & RANK_WORDS, f"{name} mentions {_words(node) & RANK_WORDS}"
    assert "world" in _words(ast.parse((ROOT / "scratchgan" / "train.py").read_text()))  # the check can see it


def test_the_loss_and_the_step_have_no_host_read_switch():
    """No to_host flag and no backend test in the loss, the metrics or the step: losses are
    0-d arrays everywhere and Metrics reads them the same way on every backend."""
    for module in ("train.py", "losses.py", "metrics.py"):
        words = _words(ast.parse((ROOT / "scratchgan" / module).read_text()))
        assert not words & {"is_device_array", "settle"}, module  # the former backend branch and its reader
        for _, node in _functions(ROOT / "scratchgan" / module):
            assert "to_host" not in [a.arg for a in node.args.args + node.args.kwonlyargs], f"{module}: {node.name}"


def test_no_function_in_the_package_is_longer_than_a_screen():
    long = [(str(path.relative_to(ROOT)), name, node.end_lineno - node.lineno + 1)
            for path in sorted((ROOT / "scratchgan").rglob("*.py")) for name, node in _functions(path)
            if node.end_lineno - node.lineno + 1 > 60]
    assert long == []
    assert max(n.end_lineno - n.lineno + 1 for _, n in _functions(ROOT / "scratchgan" / "cli.py")) <= 60


def test_the_training_classes_are_each_about_a_screen_or_two():
    for module in ("train.py", "batches.py", "metrics.py"):
        for node in ast.walk(ast.parse((ROOT / "scratchgan" / module).read_text())):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno + 1 <= 150, f"{module}: {node.name}"


def test_every_name_the_architecture_page_gives_exists():
    import importlib
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    references = re.findall(r"([\w/]+)\.py::([\w.]*\w)", text)
    assert len(references) >= 25
    for path, dotted in references:
        obj = importlib.import_module("scratchgan." + path.removeprefix("scratchgan/").replace("/", "."))
        for part in dotted.split("."):
            assert hasattr(obj, part), f"docs/architecture.md names {path}.py::{dotted}, which does not exist"
            obj = getattr(obj, part)


class _CountingComm:
    """Two ranks that hold the same rows: an Allreduce leaves the buffer as it is."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Allreduce(self, send, recv, op=None):
        pass

    def bcast(self, value, root=0):
        return value


def test_an_update_costs_one_collective_and_the_losses_one_per_read():
    """The claims of architecture.md: DataParallel makes one Allreduce per optimizer update,
    the step makes none of its own, and Metrics one per read."""
    pytest.importorskip("mpi4py")
    from scratchgan.distributed import DataParallel, World
    from scratchgan.train import GANTrainer

    world = World(_CountingComm())
    g, d, recipe = zoo.build("mlp", seed=0, world=world)
    recipe.override(batch_size=8)
    trainer = GANTrainer(g, d, recipe, np.zeros((16, 28, 28, 1), np.float32), seed=0, world=world)
    assert isinstance(trainer.updates.d_opt, DataParallel) and recipe.d_mode == "separate"
    for _ in range(3):
        trainer.advance()
    assert world.collective_calls == 3 * 3  # D on real, D on fake, G: three updates per iteration
    trainer.metrics.read()
    assert world.collective_calls == 3 * 3 + 1 and [row[0] for row in trainer.history] == [1, 2, 3]
    with pytest.raises(scratchgan.distributed.DistributedError, match="build the models for the ranks"):
        g, d, recipe = zoo.build("dcgan_bn", seed=0)  # batch norm not built for the ranks
        GANTrainer(g, d, recipe, np.zeros((16, 28, 28, 1), np.float32), seed=0, world=world)
