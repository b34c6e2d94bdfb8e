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

NumPy's own ``_reconstruct`` allocates an *uninitialised* array of any shape and
leaves it to a later BUILD step to fill it: a file that never supplies the data would
hand out whatever the process's memory held. So ``_reconstruct`` is answered here by
:class:`PendingArray`, which holds no memory at all until its BUILD brings the data:
exactly as many bytes as the declared shape and dtype need, for uint8 arrays of the
shapes a CIFAR-10 batch has (N x 3072, N <= 10,000). An array whose data never
arrives, or arrives short, long or of another type, is refused.
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

#: what an array in a CIFAR-10 batch may be: uint8, two axes, 3,072 pixel bytes a row
ARRAY_DTYPES = (np.dtype(np.uint8),)
ROW_BYTES = 3072
MAX_ROWS = 10_000


class PendingArray:
    """An array announced by ``_reconstruct`` but not yet given its data (it owns no memory)."""

    def __init__(self, subtype, shape, dtype_code):
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError(f"refusing to rebuild an array of type {subtype!r}: only numpy.ndarray")
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("an array's state must be (version, shape, dtype, fortran, data)")
        shape, dtype, fortran, data = state[-4:]
        if not isinstance(dtype, np.dtype) or dtype not in ARRAY_DTYPES:
            raise pickle.UnpicklingError(f"array of dtype {dtype!r} refused: CIFAR-10 batches hold uint8 pixels")
        if (not isinstance(shape, tuple) or len(shape) != 2 or not all(isinstance(n, int) for n in shape)
                or not 0 <= shape[0] <= MAX_ROWS or shape[1] != ROW_BYTES):
            raise pickle.UnpicklingError(f"array of shape {shape!r} refused: CIFAR-10 batches hold "
                                         f"(N, {ROW_BYTES}) with N <= {MAX_ROWS:,}")
        expected = shape[0] * shape[1] * dtype.itemsize
        if not isinstance(data, (bytes, bytearray)) or len(data) != expected:
            got = f"{len(data):,} bytes" if isinstance(data, (bytes, bytearray)) else type(data).__name__
            raise pickle.UnpicklingError(f"array of shape {shape} needs exactly {expected:,} bytes of data, got {got}")
        order = "F" if fortran else "C"
        self.array = np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order=order).copy()


def _dtype(code, align=False, copy=True):
    """numpy.dtype as a pickle asks for it, for the dtypes a CIFAR-10 batch may hold."""
    dtype = np.dtype(code)
    if dtype not in ARRAY_DTYPES:
        raise pickle.UnpicklingError(f"dtype {code!r} refused: CIFAR-10 batches hold uint8 pixels")
    return np.dtype(code)


ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): PendingArray,
    ("numpy._core.multiarray", "_reconstruct"): PendingArray,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
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
    """Unpickle ``data`` (Python 2 strings read as bytes, as CIFAR-10's files need); every
    array in the result has received exactly its data."""
    return _settle(RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load())


def _settle(value):
    """``value`` with each PendingArray replaced by its array (refused if it never got data)."""
    if isinstance(value, PendingArray):
        if value.array is None:
            raise pickle.UnpicklingError("an array without its data (the file declares an array but never fills it)")
        return value.array
    if isinstance(value, dict):
        return {k: _settle(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_settle(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_settle(v) for v in value)
    return value
