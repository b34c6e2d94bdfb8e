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
    layer through its dispatcher, each implementation only by the dispatcher, and nothing
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
    assert dispatch_callers and all(c[0].startswith(layer_files) for c in dispatch_callers), dispatch_callers
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
