"""Reader for the IDX format of MNIST (and Fashion-MNIST), gzipped or not.

An IDX file is a 4-byte magic number, then one big-endian uint32 per dimension,
then the data in C order. The magic is 0x00 0x00 TYPE NDIM; TYPE 0x08 is unsigned
bytes, the only type MNIST uses (the others are read too). Everything is checked:
the two zero bytes, the type, the number of dimensions the caller expects, and
that the file holds exactly the data its header announces.

Reading is bounded by the header, not by the file: the file is opened by the validated
reader (scratchgan/safe_io.py: a regular file within the size cap of an IDX file), the
header is read first (through gzip when the file is compressed), the data size it
declares is checked against ``max_bytes`` and the memory budget (times ``memory_factor``,
the copies the caller will make) before anything is allocated, and then exactly that
much is read (one byte more, to see whether the file goes on). So a small gzip "bomb"
that would inflate to gigabytes is refused after a few bytes.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from .. import budget
from ..errors import ScratchganError, UsageError, one_line
from ..safe_io import open_checked

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXFormatError(ScratchganError, ValueError):
    """A file that is not a valid IDX file (or not the one expected)."""


#: the most data an IDX file may declare by default (MNIST's 60,000 training images: 47 MB)
MAX_BYTES = 1 << 30


def read_idx(path, expect_ndim: int | None = None, max_bytes: int = MAX_BYTES, expect_tail: tuple | None = None,
             memory_factor: int = 1, typed: bool = True) -> np.ndarray:
    """The array stored in IDX file ``path`` (gzipped if it starts with gzip's magic), refused
    before reading its data if its header declares more than ``max_bytes`` of it, dimensions
    after the first other than ``expect_tail``, or more than the memory budget allows
    (``memory_factor`` times its data: the copies the caller will make)."""
    path = os.fspath(path)
    with open_checked(path, "idx", typed=typed, what="an IDX file") as f:
        compressed = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        stream = gzip.GzipFile(fileobj=f, mode="rb") if compressed else f
        try:
            head = stream.read(4)
            ndim = head[3] if len(head) == 4 else 0
            head += stream.read(4 * ndim)
            shape, dtype, header = _header(head, path, expect_ndim, complete=False)
            if expect_tail is not None and tuple(shape[1:]) != tuple(expect_tail):
                raise IDXFormatError(f"{one_line(path)}: header declares shape {shape}; expected (N, "
                                     f"{', '.join(map(str, expect_tail))})")
            expected = _data_bytes(shape, dtype)
            if expected > max_bytes:
                raise IDXFormatError(f"{one_line(path)}: header declares shape {shape}: {expected:,} bytes of data, "
                                     f"more than the {max_bytes:,} this reader accepts (read_idx's max_bytes)")
            budget.require(expected * memory_factor, f"{one_line(path)} (shape {shape} in its header)")
            data = stream.read(expected + 1)
        except (OSError, EOFError, zlib.error) as err:
            raise IDXFormatError(f"{one_line(path)}: cannot be read"
                                 f"{' as gzip' if compressed else ''} ({one_line(err, 100)})") from None
    if len(data) != expected:
        held = f"{len(data)} bytes" if len(data) < expected else f"more than {expected} bytes"
        raise IDXFormatError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds "
                             f"{held} after the header (truncated or not this file?)")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def parse_idx(raw: bytes, name: str = "<bytes>", expect_ndim: int | None = None) -> np.ndarray:
    """The array stored in the IDX bytes ``raw`` (uncompressed)."""
    shape, dtype, header = _header(raw, name, expect_ndim)
    expected = _data_bytes(shape, dtype)
    if len(raw) - header != expected:
        raise IDXFormatError(
            f"{name}: header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} bytes after the header (truncated or not this file?)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _data_bytes(shape, dtype) -> int:
    count = 1
    for n in shape:
        count *= n  # Python ints: a crafted header cannot overflow this
    return count * dtype.itemsize


def _header(raw: bytes, name: str, expect_ndim: int | None, complete: bool = True):
    """(shape, dtype, header length) from the start of an IDX file, every field checked."""
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
    return struct.unpack(f">{ndim}I", raw[4:header]), _TYPES[dtype_code], header


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzipped when ``compress`` or when the name ends in .gz)."""
    array = np.asarray(array)
    code = next((c for c, t in _TYPES.items() if (t.kind, t.itemsize) == (array.dtype.kind, array.dtype.itemsize)), None)
    if code is None:
        raise UsageError(f"cannot write dtype {array.dtype} as IDX")
    big = array.astype(_TYPES[code], copy=False)
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()
    path = os.fspath(path)
    if compress or (compress is None and path.endswith(".gz")):
        raw = gzip.compress(raw)
    with open(path, "wb") as f:
        f.write(raw)
