"""The op registry: one entry per named operation, one implementation per backend.

Every op is first written as a plain NumPy function (the reference) and
decorated with :func:`op`, which returns a *dispatcher* of the same name and
signature. Faster backends register their own implementation with
:func:`register`; the dispatcher calls the active backend's implementation and
falls back to the reference where none is registered::

    @op
    def leaky_relu_forward(x, slope): ...          # reference, numpy

    register("leaky_relu_forward", "numba", numba_version)

The reference stays reachable as ``leaky_relu_forward.reference``: the tests
compare every kernel against it.
"""
from __future__ import annotations

import functools
import time

from .. import backend as _backend
from ..xp import synchronize

#: OPS[name][backend] -> implementation
OPS: dict[str, dict[str, object]] = {}

#: when set, observer(name, args, seconds) is called after every op (scratchgan bench)
_observer = None


def set_observer(observer) -> None:
    """Have ``observer(name, args, seconds)`` called after every op call (None: stop)."""
    global _observer
    _observer = observer


def op(reference):
    """Register ``reference`` as the NumPy implementation of op ``reference.__name__``."""
    name = reference.__name__
    if name in OPS:
        raise ValueError(f"op {name!r} is registered twice")
    impls = {"numpy": reference}
    OPS[name] = impls

    @functools.wraps(reference)
    def dispatch(*args, **kwargs):
        impl = impls.get(_backend.get_backend(), reference)
        if _observer is None:
            return impl(*args, **kwargs)
        synchronize()  # on a GPU, time the op's kernels, not only their launch
        start = time.perf_counter()
        out = impl(*args, **kwargs)
        synchronize()
        _observer(name, args, time.perf_counter() - start)
        return out

    dispatch.reference = reference
    dispatch.op_name = name
    return dispatch


def register(name: str, backend_name: str, implementation) -> None:
    """Make ``implementation`` run op ``name`` when ``backend_name`` is active."""
    if name not in OPS:
        raise KeyError(f"no op named {name!r}; known ops: {', '.join(sorted(OPS))}")
    if backend_name not in _backend.BACKENDS or backend_name == "numpy":
        raise ValueError(f"cannot register a kernel for backend {backend_name!r}")
    OPS[name][backend_name] = implementation


def backend_has_kernels(backend_name: str) -> bool:
    """Whether any op has an implementation registered for ``backend_name``."""
    return any(backend_name in impls for impls in OPS.values())


def implementations(name: str) -> dict[str, object]:
    """{backend: implementation} for op ``name`` (a copy)."""
    return dict(OPS[name])
