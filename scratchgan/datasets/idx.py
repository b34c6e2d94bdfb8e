"""Reader for the IDX format of MNIST (and Fashion-MNIST), gzipped or not.

An IDX file is a 4-byte magic number, then one big-endian uint32 per dimension,
then the data in C order. The magic is 0x00 0x00 TYPE NDIM; TYPE 0x08 is unsigned
bytes, the only type MNIST uses (the others are read too). Everything is checked:
the two zero bytes, the type, the number of dimensions the caller expects, and
that the file holds exactly the data its header announces.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXFormatError(ValueError):
    """A file that is not a valid IDX file (or not the one expected)."""


def read_idx(path, expect_ndim: int | None = None) -> np.ndarray:
    """The array stored in IDX file ``path`` (gzipped if it starts with gzip's magic)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise IDXFormatError(f"{path}: looks gzipped but cannot be decompressed ({err})") from None
    return parse_idx(raw, name=path, expect_ndim=expect_ndim)


def parse_idx(raw: bytes, name: str = "<bytes>", expect_ndim: int | None = None) -> np.ndarray:
    if len(raw) < 4:
        raise IDXFormatError(f"{name}: {len(raw)} bytes is too short for an IDX header (at least 4)")
    zero0, zero1, dtype_code, ndim = raw[:4]
    if zero0 or zero1:
        raise IDXFormatError(
            f"{name}: not an IDX file: the magic number must start with two zero bytes, "
            f"got {raw[:4].hex()} (expected 0000 08 01 for labels or 0000 08 03 for images)"
        )
    if dtype_code not in _TYPES:
        raise IDXFormatError(f"{name}: unknown IDX data type 0x{dtype_code:02x} (expected 0x08 for unsigned bytes)")
    if expect_ndim is not None and ndim != expect_ndim:
        raise IDXFormatError(f"{name}: IDX file has {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{name}: header announces {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _TYPES[dtype_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXFormatError(
            f"{name}: header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} bytes after the header (truncated or not this file?)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzipped when ``compress`` or when the name ends in .gz)."""
    array = np.asarray(array)
    code = next((c for c, t in _TYPES.items() if (t.kind, t.itemsize) == (array.dtype.kind, array.dtype.itemsize)), None)
    if code is None:
        raise ValueError(f"cannot write dtype {array.dtype} as IDX")
    big = array.astype(_TYPES[code], copy=False)
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()
    path = os.fspath(path)
    if compress or (compress is None and path.endswith(".gz")):
        raw = gzip.compress(raw)
    with open(path, "wb") as f:
        f.write(raw)
