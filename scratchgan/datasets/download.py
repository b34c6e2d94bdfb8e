"""Fetch a file from a list of mirrors into a cache folder, verified by checksum.

The file is written to a temporary name, its MD5 checked, and only then renamed into
place, so the cache never holds a partial or wrong file (an interrupted download, Ctrl-C
included, leaves no temporary file either). A file already in the cache with the right
checksum is not fetched again.

A download is bounded: it stops as soon as a server sends more than the file's known
size (``size``; at most ``MAX_BYTES`` when the size is not known), refuses a server that
announces more, and gives up on a mirror after ``max_seconds`` in all (each read also
times out after ``timeout`` seconds), so a flooding or trickling mirror cannot hold it.
"""
from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ScratchganError
from ..safe_io import atomic_write, open_checked


class DownloadError(ScratchganError, RuntimeError):
    """No mirror delivered the file with the expected checksum."""


class _MirrorRefused(Exception):
    """This mirror's copy is refused (wrong checksum, too large, too slow); the next is tried."""


#: the most a download may bring when its size is not known (CIFAR-10's archives: 163 MB)
MAX_BYTES = 256 << 20


def cache_dir() -> Path:
    """$SCRATCHGAN_CACHE, else $XDG_CACHE_HOME/scratchgan, else ~/.cache/scratchgan."""
    if os.environ.get("SCRATCHGAN_CACHE"):
        return Path(os.environ["SCRATCHGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scratchgan"


def mirror_list(env_var: str, defaults) -> list:
    """The default mirrors, after the one named by ``env_var`` when it is set."""
    extra = os.environ.get(env_var)
    return ([extra] if extra else []) + list(defaults)


def md5sum(path, kind: str = "cifar-archive", chunk: int = 1 << 20) -> str:
    """MD5 of a cached file, read through the validated reader (a regular file within its cap)."""
    h = hashlib.md5()
    with open_checked(path, kind) as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fetch(filename: str, md5: str, mirrors, folder, timeout: float = 30.0, size: int | None = None,
          max_seconds: float = 1800.0) -> Path:
    """Path of ``filename`` in ``folder``, downloaded from the first mirror that serves it
    with checksum ``md5`` (and ``size`` bytes, when given). Raises DownloadError naming
    every mirror and what went wrong."""
    folder = Path(folder)
    target = folder / filename
    kind = "idx" if "idx" in filename else "cifar-archive"
    if os.path.lexists(target) and md5sum(target, kind) == md5:
        return target
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(target) as out:  # renamed into place only if no error is raised
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    got = _copy_bounded(resp, out, size if size is not None else MAX_BYTES, max_seconds)
                if got != md5:
                    raise _MirrorRefused(f"checksum mismatch (MD5 {got}, expected {md5})")
            return target
        except _MirrorRefused as err:
            failures.append(f"{url}: {err}")
        except (urllib.error.URLError, OSError, ValueError) as err:
            failures.append(f"{url}: {getattr(err, 'reason', err)}")
    raise DownloadError(
        f"could not download {filename} (no network, or no mirror had a good copy):\n  "
        + "\n  ".join(failures)
        + f"\nYou can put the file in {folder} yourself; it is checked against MD5 {md5}."
    )


def _copy_bounded(response, out, limit: int, max_seconds: float) -> None:
    """Copy at most ``limit`` bytes of ``response`` into ``out`` within ``max_seconds``;
    _MirrorRefused beyond either. Returns the MD5 of what was copied."""
    announced = response.headers.get("Content-Length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise _MirrorRefused(f"the server announces {int(announced):,} bytes, more than the expected {limit:,}")
    deadline = time.monotonic() + max_seconds
    received, h = 0, hashlib.md5()
    while True:
        block = response.read(1 << 20)
        if not block:
            return h.hexdigest()
        received += len(block)
        h.update(block)
        if received > limit:
            raise _MirrorRefused(f"the server sent more than the expected {limit:,} bytes")
        out.write(block)
        if time.monotonic() > deadline:
            raise _MirrorRefused(f"gave up after {max_seconds:g} s in all ({received:,} bytes received)")
