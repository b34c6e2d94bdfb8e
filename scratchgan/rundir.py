"""A run directory, owned by one :class:`Run`: every path of a run is opened here.

``scratchgan train`` keeps everything of a run in one directory::

    config.json      what was asked for (model, seed, data, recipe)      written once, read on resume
    checkpoint.npz   models, optimizers, random state, history, grids   rewritten at every interval
    log.txt          the tutorial's log lines                            appended
    metrics.csv      every iteration's losses and accuracy               rewritten (never read)
    samples/         a PNG grid of the fixed z at every interval         written, never read
    curves.png, progress.gif                                             drawn from the checkpoint's state

A run directory can be shared, copied or left behind by a killed process, so a Run

* holds an exclusive lock on ``.lock`` (``flock``: released by the operating system when
  the process ends, even after ``kill -9``): a second run is refused, naming the first;
* reads only ``checkpoint.npz`` and ``config.json``, through the validated reader
  (scratchgan/safe_io.py: no links, regular files of one link, size caps) and the
  checkpoint's schema (scratchgan/checkpoint.py). The pictures it wrote are never
  decoded again: progress.gif is drawn from sample grids the checkpoint holds;
* writes every file atomically (a temporary file renamed over it), except the log and
  the lock, which are written in place after the same checks as a read;
* refuses a directory holding a symbolic link where it writes;
* cleans up after a killed process: deletes its ``.tmp-*`` files, and cuts log.txt back
  to its length when the checkpoint was written, so no iteration is logged twice.
"""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import numpy as np

from . import checkpoint
from .errors import ConfigError, MissingFileError, RunDirError, one_line
from .safe_io import (
    append_line,
    atomic_write,
    atomic_write_text,
    open_in_place,
    read_json,
    truncate,
)

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

#: where a run writes, relative to its directory (samples/ and its files are checked too)
WRITTEN = ("config.json", "log.txt", "metrics.csv", "checkpoint.npz", "curves.png", "progress.gif", ".lock")


def new_run_path(base="runs", model="mlp") -> Path:
    """runs/MODEL-YYYYmmdd-HHMMSS, with -1, -2, ... if that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{model}-{stamp}"
    n = 1
    while os.path.lexists(path):
        path = Path(base) / f"{model}-{stamp}-{n}"
        n += 1
    return path


def refuse_existing_run(path) -> None:
    """RunDirError if ``path`` already holds a run (a new run never overwrites one)."""
    if os.path.lexists(Path(path) / "checkpoint.npz"):
        raise RunDirError(f"{one_line(path)} already holds a run; use --resume {one_line(path)} or another --out")


def check_data_fields(config: dict, where: str) -> None:
    """ConfigError unless config.json's 'data' (if any) is a data source's text and its
    'classes' (if any) a list of class names."""
    data, classes = config.get("data"), config.get("classes")
    if data is not None and (not isinstance(data, str) or not 0 < len(data) <= 4096):
        raise ConfigError(f"{where}: 'data' should be a data source like \"mnist\" or a path, "
                          f"got {one_line(repr(data), 60)}")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ConfigError(f"{where}: 'classes' should be a list of class names, got {one_line(repr(classes), 60)}")


def read_config_file(path) -> dict:
    """A run's config.json: a JSON object whose data source fields are well formed."""
    config = read_json(path, "config", in_run=True)
    if not isinstance(config, dict):
        raise ConfigError(f"{one_line(path)}: expected a JSON object, got {type(config).__name__}")
    check_data_fields(config, one_line(path))
    return config


class Run:
    """A run directory and the lock that makes it this process's (``writer=False``: read only,
    no lock, as the other ranks of a data-parallel run use it)."""

    def __init__(self, path, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        self._lock = None

    # --- opening --------------------------------------------------------------------------
    @classmethod
    def create(cls, path) -> "Run":
        """A new run in ``path`` (created if needed; it must hold no run yet), locked."""
        run = cls(path)
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(f"{one_line(path)}: cannot create the run directory ({err.strerror})") from None
        run._claim()
        try:
            refuse_existing_run(run.path)
        except RunDirError:
            run.close()
            raise
        return run

    @classmethod
    def resume(cls, path, writer: bool = True) -> "Run":
        """The existing run in ``path``, locked (when ``writer``) and cleaned of a killed run's leftovers."""
        run = cls(path, writer)
        if not os.path.lexists(run.path / "checkpoint.npz"):
            raise MissingFileError(f"{one_line(path)}: no checkpoint.npz to resume from")
        if writer:
            run._claim()
        return run

    def _claim(self) -> None:
        if not self.path.is_dir():
            raise RunDirError(f"{one_line(self.path)} is not a directory; a run directory is one")
        self.refuse_links()
        fd = open_in_place(self.path / ".lock")
        handle = os.fdopen(fd, "r+b")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = handle.read(32).decode("ascii", "replace").strip() or "another process"
                handle.close()
                raise RunDirError(f"{one_line(self.path)} is in use by process {one_line(holder)} (another scratchgan "
                                  f"train); wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._lock = handle

    def close(self) -> None:
        """Release the lock (the process's end releases it too)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def refuse_links(self) -> None:
        """RunDirError naming the first symbolic link, FIFO or other odd file among the paths a run writes."""
        samples = self.path / "samples"
        candidates = [self.path / name for name in WRITTEN] + [samples]
        if samples.is_dir() and not samples.is_symlink():
            candidates += sorted(samples.iterdir())
        for path in candidates:
            if path.is_symlink():
                raise RunDirError(f"{one_line(path)} is a symbolic link (to {one_line(os.readlink(path))}): a run "
                                  f"writes only inside its own directory and never through a link; remove the "
                                  f"link or choose another --out")
            if os.path.lexists(path) and not (path.is_dir() if path == samples else path.is_file()):
                kind = "a FIFO" if stat.S_ISFIFO(path.lstat().st_mode) else "not a regular file"
                raise RunDirError(f"{one_line(path)} is {kind}: a run directory holds only the files a run "
                                  f"writes; remove it or choose another --out")

    def remove_temporaries(self) -> list:
        """Delete the ``.tmp-*`` files left by atomic writes of a killed process; returns them."""
        found = []
        for folder in (self.path, self.path / "samples"):
            if folder.is_dir() and not folder.is_symlink():
                found += [p for p in folder.glob(".tmp-*") if p.is_symlink() or stat.S_ISREG(p.lstat().st_mode)]
        for path in found:
            path.unlink()
        return found

    # --- reading ----------------------------------------------------------------------------
    def read_checkpoint(self):
        """(recipe, arrays) of the run's checkpoint, every field checked that does not need the
        model (the trainer checks the rest against its models when it loads them)."""
        return checkpoint.read(self.path / "checkpoint.npz", in_run=True)

    def read_config(self, recipe, seed, data_source=None) -> dict:
        """config.json, checked against the checkpoint: a JSON object naming the same model
        and seed, with a data source the command line accepts and, where the checkpoint
        records one (``data_source``), the same data and classes."""
        path = self.path / "config.json"
        config = read_config_file(path)
        where = one_line(path)
        if config.get("model") != recipe.model:
            raise ConfigError(f"{where} names model {one_line(repr(config.get('model')), 60)} but checkpoint.npz beside it "
                              f"holds a {recipe.model!r} run: the two disagree, so this run directory cannot be resumed")
        if config.get("seed", seed) != seed:
            raise ConfigError(f"{where} names seed {one_line(repr(config.get('seed')), 40)} but checkpoint.npz holds seed "
                              f"{seed}: the two disagree, so this run directory cannot be resumed")
        if data_source is not None:
            for key in ("data", "classes"):
                if config.get(key) != data_source.get(key):
                    raise ConfigError(f"{where} gives {key} {one_line(repr(config.get(key)), 60)} but checkpoint.npz was "
                                      f"trained on {one_line(repr(data_source.get(key)), 60)}: the two disagree, so this "
                                      f"run directory cannot be resumed")
        return config

    # --- writing ----------------------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2) + "\n")

    def write_checkpoint(self, arrays: dict, history, name: str = "checkpoint.npz") -> None:
        """checkpoint.npz, and beside it metrics.csv: the same history, so the two always agree."""
        checkpoint.save(self.path / name, arrays)
        with atomic_write(self.path / "metrics.csv") as f:
            np.savetxt(f, np.asarray(history, dtype=np.float64).reshape(-1, len(checkpoint.METRICS)), delimiter=",",
                       header=",".join(checkpoint.METRICS), comments="", fmt=["%d", "%.6f", "%.4f", "%.6f", "%.3f"])

    def append_log(self, line: str) -> int:
        """Append one line to log.txt; returns its length in bytes (the checkpoint records it)."""
        return append_line(self.path / "log.txt", line)

    def cut_log(self, length: int) -> int:
        """Cut log.txt back to ``length`` bytes (its length at the checkpoint); returns the bytes cut."""
        return truncate(self.path / "log.txt", length)

    def sample_path(self, iteration: int) -> Path:
        samples = self.path / "samples"
        if samples.is_symlink() or (os.path.lexists(samples) and not samples.is_dir()):
            raise RunDirError(f"{one_line(samples)} is not a directory of the run")
        samples.mkdir(exist_ok=True)
        return samples / f"iter_{iteration:06d}.png"

    def picture_path(self, name: str) -> Path:
        """curves.png or progress.gif."""
        return self.path / name
