"""Backend selection: which implementation runs the named operations.

There is one switch for the whole library::

    scratchgan.set_backend("numpy")     # the readable reference (always present)
    scratchgan.set_backend("numba")     # CPU kernels    (kernels/numba)
    scratchgan.set_backend("cupy")      # CUDA kernels   (kernels/cuda, needs CuPy and a GPU)

It can also be set with the environment variable ``SCRATCHGAN_BACKEND`` (read
once, at the first use) and with ``--backend`` on the command line.

Layers never test the backend themselves: they call operations from
:mod:`scratchgan.ops`, and the op registry picks the implementation registered
for the active backend, falling back to the NumPy reference for ops a backend
does not override. Asking for a backend that cannot run here is an error, never
a silent fallback to NumPy.
"""
from __future__ import annotations

import os

BACKENDS = ("numpy", "numba", "cupy")


class BackendError(RuntimeError):
    """The requested backend does not exist, is not installed, or cannot run here."""


_active: str | None = None


def _check_available(name: str) -> None:
    """Raise BackendError unless backend ``name`` can run on this machine."""
    if name not in BACKENDS:
        raise BackendError(
            f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}"
        )
    if name == "numpy":
        return
    if name == "numba":
        try:
            import scratchgan.kernels.numba  # noqa: F401  (registers the kernels)
        except ImportError as err:
            raise BackendError(
                f"backend 'numba' needs the numba package ({err}); install it with "
                f"`pip install numba`, or use set_backend('numpy')"
            ) from None
    if name == "cupy":
        _check_cupy()
    from . import ops

    if not ops.registry.backend_has_kernels(name):
        raise BackendError(
            f"backend {name!r} is not available in this version of scratchgan: "
            f"its kernels have not been written yet. "
            f"Use set_backend('numpy') or set_backend('numba')."
        )


def _check_cupy() -> None:
    """CuPy imports, sees a CUDA GPU, and its kernels register; else a BackendError saying which."""
    try:
        import cupy
    except ImportError as err:
        raise BackendError(
            f"backend 'cupy' needs CuPy ({err}); install it with `pip install 'scratchgan[gpu]'` "
            f"(the cupy-cuda12x wheel; use cupy-cuda13x for CUDA 13), or use set_backend('numba')"
        ) from None
    try:
        gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError: no driver, no device
        raise BackendError(f"backend 'cupy' found no usable CUDA GPU ({err}); use set_backend('numba')") from None
    if gpus < 1:
        raise BackendError("backend 'cupy' found no CUDA GPU; use set_backend('numba')")
    import scratchgan.kernels.cuda.launch  # noqa: F401  (registers the kernels)


def set_backend(name: str) -> None:
    """Make ``name`` ("numpy", "numba" or "cupy") the backend of every op."""
    global _active
    name = str(name).strip().lower()
    _check_available(name)
    _active = name


def get_backend() -> str:
    """The active backend's name (from set_backend, else SCRATCHGAN_BACKEND, else numpy)."""
    global _active
    if _active is None:
        requested = os.environ.get("SCRATCHGAN_BACKEND", "numpy")
        try:
            set_backend(requested)
        except BackendError as err:
            raise BackendError(f"SCRATCHGAN_BACKEND={requested!r}: {err}") from None
    return _active

