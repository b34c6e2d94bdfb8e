"""A pickle reader that admits only what CIFAR-10's python batches contain.

``pickle.load`` runs whatever a file tells it to: a crafted "data batch" can call
``os.system``. A pickle names every callable it needs as (module, name), and
:meth:`pickle.Unpickler.find_class` is where those names are looked up, so a reader
that answers only a fixed list is safe. A CIFAR-10 batch is a dict of bytes keys,
lists, bytes and one NumPy uint8 array, which needs exactly:

- ``numpy.core.multiarray._reconstruct`` (``numpy._core`` in NumPy 2), ``numpy.ndarray``
  and ``numpy.dtype``: rebuilding the array;
- ``_codecs.encode``: how protocol 2 spells bytes when written by Python 3.

Anything else is refused with :class:`pickle.UnpicklingError` before it is called.
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

_reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # the one NumPy uses, wherever it lives

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose globals are the ``ALLOWED`` table and nothing else."""

    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch needs only NumPy's array "
                f"reconstruction, so this file is not one (or was crafted to run code)"
            ) from None


def restricted_loads(data: bytes):
    """Unpickle ``data`` (Python 2 strings read as bytes, as CIFAR-10's files need)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
