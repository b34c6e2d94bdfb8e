"""The op registry: one entry per named operation, one implementation per backend.

Every op is first written as a plain NumPy function (the reference) and decorated
with :func:`op`, which returns a *dispatcher* of the same name and signature::

    @op
    def leaky_relu_forward(x, slope): ...          # the reference, NumPy

A backend is a table ``{op name: function}`` (``scratchgan/kernels/numba``'s KERNELS,
``kernels/cuda/launch.py``'s KERNELS); :func:`scratchgan.backend.set_backend` loads it,
puts each function into ``OPS[name][backend]`` with :func:`register`, and makes that
backend the one the dispatchers use (:func:`activate`). A dispatcher then does one dict
lookup and calls the implementation, falling back to the reference where the backend
has none. Kernels never import this module: they are plain functions.

The reference stays reachable as ``leaky_relu_forward.reference``: the tests compare
every kernel against it.
"""
from __future__ import annotations

import functools
import time

from ..xp import synchronize

#: OPS[name][backend] -> implementation ("numpy": the reference)
OPS: dict[str, dict[str, object]] = {}

#: the backend whose implementations the dispatchers call (set by scratchgan.backend;
#: None until the first op call, which reads SCRATCHGAN_BACKEND)
_active: str | None = None

#: when set, observer(name, args, out, seconds) is called after every op (scratchgan bench)
_observer = None


def set_observer(observer) -> None:
    """Have ``observer(name, args, out, seconds)`` called after every op call (None: stop).
    An op that calls other ops (the blocked Winograd passes) is observed as one call."""
    global _observer
    _observer = observer


def observer():
    """The function set_observer installed (None when no one is watching)."""
    return _observer


def activate(backend_name: str) -> None:
    """Make the dispatchers call ``backend_name``'s implementations (scratchgan.backend calls this)."""
    global _active
    _active = backend_name


def _no_backend_chosen() -> str:
    raise RuntimeError("no backend is active: scratchgan.backend.set_backend() chooses one")


#: what the first op call runs when no backend was chosen yet; scratchgan.backend sets it to
#: its get_backend (SCRATCHGAN_BACKEND, else the default, numba). A hook, so that this module imports no backend.
_choose_default = _no_backend_chosen


def on_first_use(choose) -> None:
    """Have the first op call run ``choose()`` (which must activate a backend) if none is active."""
    global _choose_default
    _choose_default = choose


def active() -> str:
    """The backend the dispatchers call now (choosing the default one if none was chosen yet)."""
    return _active or _choose_default()


#: ops whose reference only calls other ops around array reshapes (the blocked Winograd
#: passes): every backend reaches its kernels through them, so none needs a kernel of its own
COMPOSED: set[str] = set()


def composed_op(reference):
    """Register ``reference``, a composition of other ops, as op ``reference.__name__`` (as op does)."""
    COMPOSED.add(reference.__name__)
    return op(reference)


def op(reference):
    """Register ``reference`` as the NumPy implementation of op ``reference.__name__``."""
    name = reference.__name__
    if name in OPS:
        raise ValueError(f"op {name!r} is registered twice")
    impls = {"numpy": reference}
    OPS[name] = impls

    @functools.wraps(reference)
    def dispatch(*args, **kwargs):
        impl = impls.get(active(), reference)
        if _observer is None:
            return impl(*args, **kwargs)
        watcher = _observer
        synchronize()  # on a GPU, time the op's kernels, not only their launch
        start = time.perf_counter()
        set_observer(None)  # the ops this one calls are part of its time, not rows of their own
        try:
            out = impl(*args, **kwargs)
        finally:
            set_observer(watcher)
        synchronize()
        watcher(name, args, out, time.perf_counter() - start)
        return out

    dispatch.reference = reference
    dispatch.op_name = name
    return dispatch


def register(name: str, backend_name: str, implementation) -> None:
    """Make ``implementation`` run op ``name`` when ``backend_name`` is active."""
    if name not in OPS:
        raise KeyError(f"no op named {name!r}; known ops: {', '.join(sorted(OPS))}")
    if backend_name == "numpy":
        raise ValueError(f"cannot register a kernel for backend {backend_name!r}: it is the reference")
    OPS[name][backend_name] = implementation


def implementations(name: str) -> dict[str, object]:
    """{backend: implementation} for op ``name`` (a copy)."""
    return dict(OPS[name])
