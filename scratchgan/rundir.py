"""A run directory: one run at a time, nothing written through a link, nothing left half-done.

``scratchgan train`` keeps everything of a run in one directory (config.json, log.txt,
metrics.csv, samples/, checkpoint.npz, curves.png, progress.gif). A run directory can
be shared with others or left behind by a killed process, so before a run writes to it:

* **One run per directory.** :func:`claim` takes an exclusive lock on ``.lock`` in the
  directory (``flock``: the operating system releases it when the process ends, even
  after ``kill -9``) and writes the holder's process id into it; a second run is refused,
  naming that process.
* **Nothing through a symbolic link.** :func:`refuse_links` refuses a directory that
  holds a symbolic link where the run writes (``log.txt``, ``samples/`` or a sample, the
  checkpoint, ...), naming it, so no write can land outside the directory. Log lines are
  appended with ``O_NOFOLLOW``; every other file is written to a temporary file beside
  it and renamed over it (scratchgan/io.py), which replaces a link rather than following it.
* **Crash leftovers.** :func:`remove_temporaries` deletes the ``.tmp-*`` files of
  atomic writes a killed process left; :func:`trim_log` drops log lines beyond the
  checkpoint's iteration, so a resumed run never logs an iteration twice.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None


class RunDirError(ValueError):
    """A run directory that this run cannot use as it is (in use, or holding a link)."""


#: where a run writes, relative to its directory (the directory and samples/ are checked too)
WRITTEN = ("config.json", "log.txt", "metrics.csv", "checkpoint.npz", "curves.png", "progress.gif", ".lock")


def claim(run_dir) -> object:
    """Create ``run_dir`` if needed and lock it for this process; returns the open lock file,
    which holds the lock until it is closed or the process ends. RunDirError if another
    process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    refuse_links(run_dir)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    handle = os.fdopen(fd, "r+")
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(f"{run_dir} is in use by process {holder} (another scratchgan train); "
                              f"wait for it to finish or choose another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def refuse_links(run_dir) -> None:
    """RunDirError naming the first symbolic link among the paths a run writes."""
    run_dir = Path(run_dir)
    candidates = [run_dir / name for name in WRITTEN] + [run_dir / "samples"]
    if (run_dir / "samples").is_dir() and not (run_dir / "samples").is_symlink():
        candidates += sorted((run_dir / "samples").iterdir())
    for path in candidates:
        if path.is_symlink():
            raise RunDirError(f"{path} is a symbolic link (to {os.readlink(path)}): a run writes only inside its "
                              f"own directory and never through a link; remove the link or choose another --out")


def remove_temporaries(run_dir) -> list:
    """Delete the ``.tmp-*`` files left by atomic writes of a process that was killed; returns them."""
    run_dir = Path(run_dir)
    found = [p for folder in (run_dir, run_dir / "samples") if folder.is_dir() and not folder.is_symlink()
             for p in folder.glob(".tmp-*") if p.is_file() and not p.is_symlink()]
    for path in found:
        path.unlink()
    return found


_ITERATION = re.compile(r"^(\d+) ")


def trim_log(run_dir, iteration: int) -> int:
    """Drop the lines of log.txt that report iterations after ``iteration`` (the checkpoint's);
    returns how many were dropped. Rewritten atomically."""
    from .io import atomic_write

    path = Path(run_dir) / "log.txt"
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not ((m := _ITERATION.match(line)) and int(m.group(1)) > iteration)]
    if len(kept) != len(lines):
        with atomic_write(path) as tmp:
            Path(tmp).write_text("".join(kept))
    return len(lines) - len(kept)


def append_line(path, line: str) -> None:
    """Append ``line`` and a newline to ``path``, never following a symbolic link."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if os.path.islink(path):
            raise RunDirError(f"{path} is a symbolic link: a run never writes through one") from None
        raise
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")
