"""Argument checks for the launchers of kernels that write into their arguments.

Numba's compiled loops do not check bounds: a state array shorter than its parameter
would be written past its end. Everything read from disk is validated long before it
reaches a kernel (scratchgan/checkpoint.py); these checks are the last line of defence,
cheap (a few comparisons per call) and always on.
"""
from __future__ import annotations

import numpy as np


class KernelArgumentError(ValueError):
    """A kernel called with arrays that do not agree (a bug in the caller, not bad input)."""


def same_layout(kernel: str, reference: np.ndarray, **arrays) -> None:
    """Each of ``arrays`` is a C-contiguous NumPy array of ``reference``'s shape and dtype
    (``reference`` itself C-contiguous and floating-point)."""
    if not isinstance(reference, np.ndarray) or reference.dtype.kind != "f" or not reference.flags.c_contiguous:
        raise KernelArgumentError(f"{kernel}: the parameter must be a C-contiguous float array, "
                                  f"got {type(reference).__name__} {getattr(reference, 'dtype', '')}")
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.shape != reference.shape or a.dtype != reference.dtype:
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise KernelArgumentError(f"{kernel}: {name} is {got}, the parameter {reference.dtype} {reference.shape}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise KernelArgumentError(f"{kernel}: {name} must be C-contiguous and writeable")


def channel_vectors(kernel: str, channels: int, **vectors) -> None:
    """Each of ``vectors`` is a 1-D array of ``channels`` values (per-channel parameters the
    loops index by channel)."""
    for name, v in vectors.items():
        if getattr(v, "shape", None) != (channels,):
            got = getattr(v, "shape", type(v).__name__)
            raise KernelArgumentError(f"{kernel}: {name} has shape {got}, expected ({channels},) for {channels} channels")


def same_shape(kernel: str, expected: tuple, **arrays) -> None:
    """Each of ``arrays`` has shape ``expected`` (arrays a loop walks in step)."""
    for name, a in arrays.items():
        if getattr(a, "shape", None) != tuple(expected):
            got = getattr(a, "shape", type(a).__name__)
            raise KernelArgumentError(f"{kernel}: {name} has shape {got}, expected {tuple(expected)}")
