"""The one way scratchgan reads a file, and its twin for writing.

Every file the program opens for input (data, checkpoints, configs, weights, pictures)
is opened by :func:`open_checked`, which

1. opens with ``O_NOFOLLOW | O_NONBLOCK``: a symbolic link is refused instead of followed,
   and a FIFO or device cannot block the open;
2. checks with ``fstat`` on the open descriptor (so nothing can be swapped in between)
   that it is a regular file, and, for a file inside a run directory, that it has one
   link (a hard link would let a run read or write a file outside its directory);
3. refuses a file larger than the cap of its kind (``LIMITS``) before reading a byte.

A path the user typed (``--data ~/pictures/x.tar.gz``) may itself be a link: it is
resolved once (``typed=True``) and the file it names is then opened as above. Links
found *inside* folders and run directories are never followed.

Writes go through :func:`atomic_write`: a new temporary file beside the target
(``O_EXCL``, so never an existing file or link), flushed to disk and renamed over the
target, so a reader sees the old file or the new one, never half of one, and a link at
the target is replaced rather than written through. :func:`append_line` appends to a
run's log with the same checks as a read.

``.npz`` archives are read by :func:`read_npz`, which checks every member's ``.npy``
header (dtype, shape, and that the shape fits the bytes the member holds) before it
allocates the member's array.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import FileRefused, MissingFileError, one_line

MiB = 1 << 20
GiB = 1 << 30

#: the largest file of each kind that is read (bytes), checked before reading
LIMITS = {
    "checkpoint": 2 * GiB,   # dcgan_upsample's checkpoint: 165 MB
    "weights": 2 * GiB,      # Sequential.save_weights files
    "classifier": 64 * MiB,  # the evaluation classifier's weights (the shipped one: 0.4 MB)
    "config": 1 * MiB,       # config.json (a few kB)
    "idx": 1 * GiB,          # an IDX file, gzipped or not (MNIST's training images: 47 MB)
    "cifar-archive": 1 * GiB,  # a CIFAR-10 .tar.gz (163 MB)
    "cifar-batch": 40 * MiB,   # one CIFAR-10 batch file: 10,000 images, 30.7 MB
    "picture": 64 * MiB,     # one PNG or JPEG of a picture folder
    "conv-algorithms": 4 * MiB,  # the measured convolution-algorithm choices (a few kB per model)
}

#: the most members an .npz may hold (a checkpoint of the largest model: about 150)
MAX_NPZ_MEMBERS = 4096
#: dtypes an .npz member may have: numbers and text, never objects or records
NPZ_KINDS = "biuf" + "U"
#: the longest text an .npz member may hold, per element (a recipe or RNG state: a few kB)
MAX_TEXT_CHARS = 1 << 20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _describe_mode(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _open_fd(path: str, flags: int, what: str) -> int:
    """os.open without following a link or blocking; errors as FileRefused / MissingFileError."""
    try:
        return os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o644)
    except FileNotFoundError:
        raise MissingFileError(f"{one_line(path)}: no such file (expected {what})") from None
    except OSError as err:
        if os.path.islink(path):
            raise FileRefused(f"{one_line(path)} is a symbolic link: scratchgan never follows a link it did not "
                              f"name itself; name the file it points to") from None
        raise FileRefused(f"{one_line(path)}: cannot open ({err.strerror}); expected {what}") from None


def check_descriptor(fd: int, path: str, what: str, limit: int | None, in_run: bool) -> os.stat_result:
    """fstat ``fd``: a regular file, of one link in a run directory, at most ``limit`` bytes."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"{one_line(path)} is {_describe_mode(info.st_mode)}, not a regular file; expected {what}")
    if in_run and info.st_nlink != 1:
        raise FileRefused(f"{one_line(path)} has {info.st_nlink} hard links: a file of a run directory must be the "
                          f"run's own; copy a run with `cp -a`, not `cp -al`")
    if limit is not None and info.st_size > limit:
        raise FileRefused(f"{one_line(path)}: {info.st_size:,} bytes is more than a {what} may have here "
                          f"({limit:,} bytes)")
    return info


def resolve_typed(path) -> str:
    """A path the user typed, with its links resolved (the user chose it)."""
    return os.path.realpath(os.fspath(path))


def _checked_fd(path: str, flags: int, what: str, limit: int | None, in_run: bool) -> int:
    """A descriptor opened by _open_fd and checked by check_descriptor (closed if refused)."""
    fd = _open_fd(path, flags, what)
    try:
        check_descriptor(fd, path, what, limit, in_run)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def open_checked(path, kind: str, *, in_run: bool = False, typed: bool = False, what: str | None = None):
    """A binary file object of a checked regular file of ``kind`` (a key of LIMITS)."""
    path = resolve_typed(path) if typed else os.fspath(path)
    fd = _checked_fd(path, os.O_RDONLY, what or f"{kind} file", LIMITS[kind], in_run)
    with os.fdopen(fd, "rb") as f:
        yield f


def read_bytes(path, kind: str, **options) -> bytes:
    """The whole file (at most LIMITS[kind] bytes: a file that grows while read is refused)."""
    with open_checked(path, kind, **options) as f:
        data = f.read(LIMITS[kind] + 1)
    if len(data) > LIMITS[kind]:
        raise FileRefused(f"{one_line(path)}: grew beyond {LIMITS[kind]:,} bytes while it was read")
    return data


def read_json(path, kind: str = "config", **options):
    """The JSON value of a UTF-8 file of ``kind``; FileRefused for anything else."""
    raw = read_bytes(path, kind, **options)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FileRefused(f"{one_line(path)}: not readable JSON ({one_line(err, 120)})") from None


# --- .npz archives -----------------------------------------------------------------------

def read_npz(path, kind: str = "checkpoint", **options) -> dict:
    """{name: array} of an .npz file, each member's header checked before its data is read:
    a numeric or text dtype, a shape whose bytes are exactly what the member holds, and
    the member's declared size within the file's cap."""
    with open_checked(path, kind, what=f"{kind} (.npz archive)", **options) as f:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise FileRefused(f"{one_line(path)}: not an .npz archive ({one_line(err, 120)})") from None
        with archive:
            infos = archive.infolist()
            _check_members(path, infos, LIMITS[kind])
            arrays = {}
            for info in infos:
                try:
                    with archive.open(info) as member:
                        arrays[info.filename[:-4]] = _read_member(member, info.file_size, path, info.filename)
                except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                        RuntimeError) as err:  # RuntimeError: an encrypted member
                    if isinstance(err, FileRefused):
                        raise
                    raise FileRefused(f"{one_line(path)}: member {one_line(info.filename)} cannot be read "
                                      f"({one_line(err, 120)})") from None
    return arrays


def _check_members(path, infos, limit: int) -> None:
    if len(infos) > MAX_NPZ_MEMBERS:
        raise FileRefused(f"{one_line(path)}: {len(infos):,} members, more than an .npz may hold here "
                          f"({MAX_NPZ_MEMBERS:,})")
    names = [i.filename for i in infos]
    bad = next((n for n in names if not n.endswith(".npy") or len(n) > 512), None)
    if bad is not None:
        raise FileRefused(f"{one_line(path)}: member {one_line(bad)} is not an .npy array; an .npz holds only those")
    if len(set(names)) != len(names):
        raise FileRefused(f"{one_line(path)}: a member name appears twice; an .npz names each array once")
    total = sum(i.file_size for i in infos)
    if total > limit:
        raise FileRefused(f"{one_line(path)}: its members declare {total:,} bytes in all, more than this kind of "
                          f"file may hold here ({limit:,})")


def _read_member(member, size: int, path, name: str) -> np.ndarray:
    """One .npy member: header checked against ``size`` (the bytes the archive says it holds)."""
    where = f"{one_line(path)}: member {one_line(name)}"
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise FileRefused(f"{where}: .npy format version {version} is not read here (1.0 or 2.0)")
    if dtype.kind not in NPZ_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise FileRefused(f"{where}: dtype {dtype} refused; members hold numbers or text")
    if dtype.kind == "U" and dtype.itemsize > 4 * MAX_TEXT_CHARS:
        raise FileRefused(f"{where}: text of {dtype.itemsize // 4:,} characters, more than {MAX_TEXT_CHARS:,}")
    count = 1
    for n in shape:
        count *= int(n)
    header = member.tell()
    if count * dtype.itemsize != size - header:
        raise FileRefused(f"{where}: header declares shape {shape} of {dtype} ({count * dtype.itemsize:,} bytes) "
                          f"but the member holds {size - header:,} bytes of data")
    buffer = bytearray(count * dtype.itemsize)
    if member.readinto(memoryview(buffer)) != len(buffer) or member.read(1):
        raise FileRefused(f"{where}: holds other than the {len(buffer):,} bytes its header declares")
    array = np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=False) if not dtype.isnative else array


# --- writing --------------------------------------------------------------------------------

def _refuse_odd_target(path: Path) -> None:
    """A write's target may be missing or a regular file, never a link, directory or FIFO."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise FileRefused(f"{one_line(path)} is a symbolic link: scratchgan never writes through one; remove it "
                          f"or write elsewhere")
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"{one_line(path)} is {_describe_mode(info.st_mode)}: scratchgan writes only regular files")


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file object for a temporary file beside ``path``; on success it is
    flushed to disk and renamed over ``path``, on any error it is deleted. The rename makes
    a new file: a hard link to the old one elsewhere keeps the old contents.

        with atomic_write("ckpt.npz") as f:
            np.savez(f, ...)
    """
    path = Path(path)
    _refuse_odd_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    except OSError as err:
        raise FileRefused(f"{one_line(path)}: cannot write beside it ({err.strerror})") from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would create it (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _refuse_odd_target(path)  # again: it may have been swapped while we wrote
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def atomic_save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def atomic_write_text(path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


def open_in_place(path, *, create: bool = True, append: bool = False) -> int:
    """A descriptor for a run's file that is written in place (the log, the lock): never a
    link, a regular file of one link. The caller closes it."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0) | (os.O_APPEND if append else 0)
    return _checked_fd(os.fspath(path), flags, "a regular file of the run", None, in_run=True)


def append_line(path, line: str) -> int:
    """Append ``line`` and a newline to a run's file; returns the file's new size in bytes."""
    fd = open_in_place(path, append=True)
    with os.fdopen(fd, "ab") as f:
        f.write((line + "\n").encode("utf-8"))
        f.flush()
        return os.fstat(f.fileno()).st_size


def truncate(path, size: int) -> int:
    """Cut a run's file to at most ``size`` bytes (without reading it); returns the bytes cut."""
    try:
        fd = open_in_place(path, create=False)
    except MissingFileError:
        return 0
    try:
        have = os.fstat(fd).st_size
        if have > size:
            os.ftruncate(fd, size)
        return max(have - size, 0)
    finally:
        os.close(fd)
