"""Backend selection: which implementation runs the named operations.

There is one switch for the whole library::

    scratchgan.set_backend("numpy")     # the readable reference (always present)
    scratchgan.set_backend("numba")     # CPU kernels    (kernels/numba)
    scratchgan.set_backend("cupy")      # CUDA kernels   (kernels/cuda, needs CuPy and a GPU)

It can also be set with the environment variable ``SCRATCHGAN_BACKEND`` (read
once, at the first use) and with ``--backend`` on the command line. Without any of
these the backend is ``DEFAULT``, numba.

This module owns the choice. ``set_backend`` imports the backend's kernel table (a
plain ``{op name: function}`` dict), registers it with the op registry
(:mod:`scratchgan.ops.registry`) and activates it there; layers never test the backend
themselves, they call ops, and each op's dispatcher calls the active backend's
function or the NumPy reference where the backend has none. Asking for a backend that
cannot run here is an error, never a silent fallback to NumPy.
"""
from __future__ import annotations

import importlib
import os
import sys

import numpy as np

from .errors import ScratchganError
from .ops import registry

BACKENDS = ("numpy", "numba", "cupy")
#: the backend used when none is chosen: the Numba kernels, which `scratchgan bench` measures
#: at least as fast as the NumPy reference on every zoo model (the reference stays one switch away)
DEFAULT = "numba"

#: where each fast backend's kernel table lives (a module with a KERNELS dict)
KERNEL_MODULES = {"numba": "scratchgan.kernels.numba", "cupy": "scratchgan.kernels.cuda.launch"}


class BackendError(ScratchganError, RuntimeError):
    """The requested backend does not exist, is not installed, or cannot run here."""


_active: str | None = None
#: backend name -> the kernel module whose table is registered (a re-imported module registers again)
_registered: dict = {}


def _import_kernels(name: str):
    """The kernel module of backend ``name``, with a BackendError that says what is missing."""
    try:
        return importlib.import_module(KERNEL_MODULES[name])
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("scratchgan.kernels"):
            raise BackendError(
                f"scratchgan.kernels is missing from {os.path.dirname(__file__)}: this looks like a source "
                f"checkout that is not installed, or not in editable mode. Run `python3 -m pip install -e .` "
                f"in the checkout (or run from outside it, against the installed package)"
            ) from None
        if name == "numba":
            raise BackendError(
                f"backend 'numba' needs the numba package ({err}); install it with "
                f"`pip install numba`, or use set_backend('numpy')"
            ) from None
        raise


def _check_cupy() -> None:
    """CuPy imports and sees a CUDA GPU; else a BackendError saying which."""
    try:
        import cupy
    except ImportError as err:
        raise BackendError(
            f"backend 'cupy' needs CuPy ({err}); install it with `pip install 'scratchgan[gpu]'` "
            f"(`pip install '.[gpu]'` in a source checkout: the cupy-cuda12x wheel; use cupy-cuda13x "
            f"for CUDA 13), or use set_backend('numba')"
        ) from None
    try:
        gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError: no driver, no device
        raise BackendError(f"backend 'cupy' found no usable CUDA GPU ({err}); use set_backend('numba')") from None
    if gpus < 1:
        raise BackendError("backend 'cupy' found no CUDA GPU; use set_backend('numba')")


def _load(name: str) -> None:
    """Check that backend ``name`` can run here and register its kernels with the op registry."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    if name == "numpy":
        return
    if name == "cupy":
        _check_cupy()
    module = _import_kernels(name)
    if _registered.get(name) is module:
        return  # registered when the module was imported: nothing changed since
    kernels = getattr(module, "KERNELS", None)
    if not kernels:
        raise BackendError(f"backend {name!r} has no kernels in this version of scratchgan; "
                           f"use set_backend('numpy') or set_backend('numba')")
    below = getattr(module, "NUMPY_BELOW", {})
    for op_name, function in kernels.items():
        if op_name in below:
            function = numpy_below(below[op_name], registry.implementations(op_name)["numpy"], function)
        registry.register(op_name, name, function)
    if name == "numba" and "numba" not in _registered:
        _announce_numba_compilation()
    _registered[name] = module


def numpy_below(size: int, reference, kernel):
    """``kernel``, except that a call whose first array has fewer than ``size`` values runs
    ``reference`` (a backend's NUMPY_BELOW table: ops whose kernels cost more than NumPy on
    tiny arrays). The kernel stays reachable as ``.kernel``."""
    def run(*args, **kwargs):
        return (reference if args[0].size < size else kernel)(*args, **kwargs)

    run.kernel = kernel
    return run


def _announce_numba_compilation() -> None:
    """Say so on stderr, once per process, when a kernel this run uses is compiled instead
    of loaded from Numba's cache (the first run after an install or a kernel change: a
    few seconds per kernel). Numba compiles only the kernels a run calls, when it first
    calls them."""
    try:
        from numba.core import event
    except ImportError:  # an old Numba: compile silently
        return

    class Announce(event.Listener):
        said = False

        def on_start(self, ev):
            function = ev.data["dispatcher"].py_func
            if not self.said and function.__module__.startswith("scratchgan.kernels"):
                type(self).said = True
                print("scratchgan: compiling the Numba kernels this run uses (first run only: later runs "
                      "load them from Numba's cache) ...", file=sys.stderr, flush=True)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Announce())


def set_backend(name: str) -> None:
    """Make ``name`` ("numpy", "numba" or "cupy") the backend of every op."""
    global _active
    name = str(name).strip().lower()
    _load(name)
    _active = name
    registry.activate(name)


def get_backend() -> str:
    """The active backend's name: from set_backend, else SCRATCHGAN_BACKEND, else DEFAULT.
    A default that cannot run here (Numba missing or broken) falls back to numpy, saying so on
    stderr; a backend that was asked for by name never falls back."""
    if _active is None:
        requested = os.environ.get("SCRATCHGAN_BACKEND")
        if requested:
            try:
                set_backend(requested)
            except BackendError as err:
                raise BackendError(f"SCRATCHGAN_BACKEND={requested!r}: {err}") from None
        else:
            try:
                set_backend(DEFAULT)
            except BackendError as err:
                print(f"scratchgan: the default backend {DEFAULT!r} cannot run here, using 'numpy' ({err})",
                      file=sys.stderr)
                set_backend("numpy")
    return _active


registry.on_first_use(get_backend)  # an op called before any set_backend: SCRATCHGAN_BACKEND, else DEFAULT


def backend_module():
    """The array module of the active backend: cupy for "cupy", numpy otherwise. Layers create
    their weights with it; data and noise go there before they meet the weights."""
    if get_backend() == "cupy":
        import cupy

        return cupy
    return np


def to_device(a, dtype=None):
    """``a`` as an array of the active backend's module (a copy only where needed)."""
    return backend_module().asarray(a, dtype=dtype)
