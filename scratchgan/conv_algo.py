"""Which algorithm runs each pass of each convolution: im2col + GEMM, or Winograd.

One switch, like the backend's::

    scratchgan.set_conv_algo("auto")      # measure, keep the fastest (the default)
    scratchgan.set_conv_algo("im2col")    # im2col + one GEMM everywhere (bit-for-bit as before)
    scratchgan.set_conv_algo("winograd")  # F(4x4, r x r) wherever it serves, im2col elsewhere

also ``SCRATCHGAN_CONV_ALGO`` (read at the first convolution) and ``--conv-algo`` on the
command line. Winograd (scratchgan/ops/winograd.py) serves stride-1 3x3 and 5x5 kernels,
and stride-2 5x5 kernels as a 3x3 convolution on 2x2 blocks (scratchgan/ops/strided_winograd.py),
on the numba and numpy backends; any other layer runs im2col, and ``winograd`` says so
once per layer on stderr. The three passes of a layer (forward, backward-data,
backward-weights) are chosen separately: each is its own convolution.

``auto``, as cuDNN's benchmark mode: the first time a pass runs with a new input shape, each
algorithm that applies (im2col, whose Numba kernel takes its few-filter path by itself,
F(2x2, r x r) and F(4x4, r x r) where both channel counts reach MIN_CHANNELS) runs once to
warm up and twice timed, and the fastest is kept for that shape, unless a more exact one
is within MARGIN (5%) of it (``preferred``: im2col before F(2x2) before F(4x4)). On the
numpy backend (the reference) ``auto`` is im2col: nothing is timed. Choices are cached in
``conv-algorithms.json`` in scratchgan's cache folder ($SCRATCHGAN_CACHE, else
~/.cache/scratchgan; or the file $SCRATCHGAN_CONV_CACHE), keyed by pass, shapes, dtype,
backend, CPU model, thread count, library versions and MARGIN, so a later run on the same
machine skips the timing. The file is read through the validated reader; a corrupt or foreign one is
ignored with a warning (and rewritten), never trusted. Winograd and im2col agree to
float32 rounding, not bit for bit: ``im2col`` is the choice for runs that must repeat
bit for bit on another machine.
"""
from __future__ import annotations

import functools
import math
import os
import sys
import time
from dataclasses import dataclass

from . import ops
from .errors import FileRefused, UsageError, one_line
from .ops import registry, strided_winograd, winograd

MODES = ("auto", "im2col", "winograd")
#: the environment variable read at the first convolution when set_conv_algo was not called
VARIABLE = "SCRATCHGAN_CONV_ALGO"
#: the file of measured choices in the cache folder
CACHE_FILE = "conv-algorithms.json"
#: the environment variable that names another cache file
CACHE_VARIABLE = "SCRATCHGAN_CONV_CACHE"
CACHE_FORMAT = "scratchgan conv algorithms"
CACHE_VERSION = 1
#: the Winograd tile that ``winograd`` runs: the larger, with the fewest multiplications
FORCED_TILE = 4

#: pass -> (im2col op, Winograd op); each Winograd op takes the im2col op's arguments and the tile
PASSES = {
    "forward": (ops.conv2d_forward, ops.winograd_conv2d_forward),
    "backward_data": (ops.conv2d_backward_data, ops.winograd_conv2d_backward_data),
    "backward_weights": (ops.conv2d_backward_weights, ops.winograd_conv2d_backward_weights),
}
#: pass -> the Winograd op of a stride-2 5x5 window (a 3x3 convolution on 2x2 blocks)
STRIDED_PASSES = {
    "forward": ops.strided_winograd_conv2d_forward,
    "backward_data": ops.strided_winograd_conv2d_backward_data,
    "backward_weights": ops.strided_winograd_conv2d_backward_weights,
}
#: backends with Winograd kernels (numpy runs the reference)
WINOGRAD_BACKENDS = ("numba", "numpy")


def winograd_refusal(g) -> str | None:
    """None if Winograd serves window ``g`` (stride 1, 3x3 or 5x5; or stride 2, 5x5, on 2x2
    blocks); else why not, in a few words."""
    if winograd.serves(g) is None or strided_winograd.serves(g) is None:
        return None
    return (f"stride {g.sh}x{g.sw}, kernel {g.kh}x{g.kw} (Winograd serves 3x3 and 5x5 kernels with "
            f"stride 1, and 5x5 with stride 2)")


def winograd_op(pass_name: str, g):
    """The Winograd op that runs pass ``pass_name`` of window ``g``."""
    return (PASSES[pass_name][1] if (g.sh, g.sw) == (1, 1) else STRIDED_PASSES[pass_name])


def winograd_tile(m: int, g):
    """The Tile F(m x m, r x r) that serves window ``g``: r is the kernel's size, or 3 on 2x2 blocks."""
    return winograd.tile(m, g.kh if (g.sh, g.sw) == (1, 1) else strided_winograd.BLOCKED_KERNEL)

_mode: list = [None]  # None until set_conv_algo or the first convolution reads VARIABLE


def set_conv_algo(mode: str) -> None:
    """Choose how convolutions run: "auto", "im2col" or "winograd" (see the module's doc)."""
    if mode not in MODES:
        raise UsageError(f"conv algorithm {mode!r}: expected one of {', '.join(MODES)}")
    _mode[0] = mode


def get_conv_algo() -> str:
    """The mode in force (``SCRATCHGAN_CONV_ALGO`` or "auto" when none was set)."""
    if _mode[0] is None:
        value = os.environ.get(VARIABLE, "").strip() or "auto"
        if value not in MODES:
            raise UsageError(f"{VARIABLE}={value!r}: expected one of {', '.join(MODES)}")
        _mode[0] = value
    return _mode[0]


@dataclass(frozen=True)
class Choice:
    """One algorithm: ``tile`` None is im2col + GEMM, 2 or 4 is Winograd F(tile x tile, r x r)."""

    tile: int | None = None

    def run(self, pass_name, args, g):
        """Run pass ``pass_name`` on ``args`` (the im2col op's, without ``g``) with this algorithm."""
        if self.tile is None:
            return PASSES[pass_name][0](*args, g)
        return winograd_op(pass_name, g)(*args, g, winograd_tile(self.tile, g))


IM2COL = Choice()


class ConvAlgorithms:
    """The algorithm each pass of one convolution layer runs, chosen on the first call per
    input shape and kept (see the module's doc). ``name`` names the layer in notes."""

    def __init__(self, name: str):
        self.name = name
        self.chosen: dict[tuple, object] = {}  # (pass, shapes, dtype, backend, mode) -> Tile or None
        self.noted = False

    def tile(self, pass_name: str, g, *arrays):
        """The Winograd Tile that runs pass ``pass_name`` (a key of PASSES) on ``arrays`` (the
        im2col op's array arguments, in its order), or None for im2col."""
        mode, backend = get_conv_algo(), registry.active()
        key = (pass_name, tuple(a.shape for a in arrays), arrays[0].dtype, backend, mode)
        if key not in self.chosen:
            m = self._choose(pass_name, g, arrays, mode, backend).tile
            self.chosen[key] = None if m is None else winograd_tile(m, g)
        return self.chosen[key]

    def _choose(self, pass_name, g, arrays, mode, backend) -> Choice:
        why = winograd_refusal(g)
        if why is None and backend not in WINOGRAD_BACKENDS:
            why = f"the {backend} backend has no Winograd kernels"
        if mode == "winograd" and why is not None:
            if not self.noted:
                print(f"scratchgan: {self.name}: {why}; it runs im2col", file=sys.stderr, flush=True)
                self.noted = True
            return IM2COL
        if mode == "im2col" or why is not None or (mode == "auto" and backend == "numpy"):
            return IM2COL
        if mode == "winograd":
            return Choice(FORCED_TILE)
        return _measured(pass_name, g, arrays, backend)


# --- auto: measure once per shape and machine, remember in the cache file -------------------

def _code_checksum(*modules) -> str:
    """A checksum of the code (and constants) of every function the modules define, read from
    the loaded functions, not from files: it changes when a kernel does."""
    import zlib

    crc = 0
    for module in modules:
        for name, value in sorted(vars(module).items()):
            code = getattr(getattr(value, "py_func", value), "__code__", None)
            if code is not None and getattr(value, "__module__", None) == module.__name__:
                crc = zlib.crc32(_code_bytes(code), crc)
            elif name.isupper() and isinstance(value, int):  # sizes such as CHUNK_BYTES
                crc = zlib.crc32(f"{name}={value}".encode(), crc)
    return f"{crc:08x}"


def _code_bytes(code) -> bytes:
    """A function's bytecode and constants, the same in every process: a nested function's
    or comprehension's code object is a constant whose repr holds its memory address, so
    it is walked into instead (with the address in the key, no process found another's
    choices)."""
    parts = [code.co_code]
    for const in code.co_consts:
        parts.append(_code_bytes(const) if hasattr(const, "co_code") else repr(const).encode())
    return b"\x00".join(parts)


@functools.lru_cache(maxsize=None)
def _machine_key(backend: str) -> str:
    """CPU model, library versions (and a checksum of the conv kernels' and their GEMMs'
    code, which changes between releases during development), backend, threads and the
    MARGIN the choice was made with."""
    import importlib.metadata

    import numpy as np

    from .machine import cpu_model

    try:
        version = importlib.metadata.version("scratchgan")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    parts = [f"cpu={cpu_model()}", f"scratchgan={version}", f"numpy={np.__version__}", f"backend={backend}",
             f"margin={MARGIN}"]
    if backend == "numba":
        import numba

        from .kernels.numba import conv, gemm, winograd as kernels

        parts += [f"numba={numba.__version__}", f"threads={numba.config.NUMBA_NUM_THREADS}",
                  f"kernels={_code_checksum(conv, kernels, gemm)}"]
    return " ".join(parts)


def cache_key(pass_name, g, arrays, backend) -> str:
    """The cache's key of one measurement: everything its timing depends on."""
    shapes = ";".join("x".join(map(str, a.shape)) for a in arrays)
    return f"{pass_name} {shapes} {g} {arrays[0].dtype} | {_machine_key(backend)}"


#: Winograd is not timed where the GEMMs are thinner than this (input or output channels):
#: its transforms then cost more than the multiplications they save. On the zoo's layers
#: with 1 or 3 channels on one side im2col won every pass by 2.3-11x
#: (examples/winograd_layers.py); from 64 channels up the two are close, so they are timed.
MIN_CHANNELS = 16
#: timed rounds per algorithm, after one warm-up call each; the fastest round counts
ROUNDS = 2
#: an algorithm with more float32 error is kept only where it beats every more exact one by
#: more than this fraction of the fastest time: two timed rounds of one call spread by a few
#: percent on a quiet machine, and a choice that flips with that noise changes a run's
#: numbers (Winograd and im2col agree to rounding only) for no speed
MARGIN = 0.05


def preferred(timings: dict) -> "Choice":
    """From ``timings`` {tile: seconds} (None: im2col), the first of im2col, F(2x2), F(4x4)
    (in order of growing float32 error, docs/derivations.md) that takes at most (1 + MARGIN)
    times the fastest one's time."""
    fastest = min(timings.values())
    for tile in (None, *winograd.TILES):
        if tile in timings and timings[tile] <= fastest * (1 + MARGIN):
            return Choice(tile)
    raise ValueError(f"no known algorithm among {sorted(map(str, timings))}")


def candidates(arrays, pass_name) -> tuple:
    """The algorithms ``auto`` times for a pass on these arrays: im2col, and the Winograd
    tiles where both channel counts reach MIN_CHANNELS."""
    if pass_name == "backward_weights":
        dy, x = arrays
        channels = (x.shape[-1], dy.shape[-1])
    else:
        channels = arrays[1].shape[2:]  # the kernel's (C, F)
    if min(channels) < MIN_CHANNELS:
        return (IM2COL,)
    return (IM2COL, *(Choice(m) for m in winograd.TILES))


def _measured(pass_name, g, arrays, backend) -> Choice:
    """The preferred Choice for this pass on these arrays: from the cache, or timed now (each
    candidate once to warm up, then ROUNDS rounds in turn; the fastest round counts) and
    chosen by ``preferred``."""
    options = candidates(arrays, pass_name)
    if len(options) == 1:
        return options[0]
    key = cache_key(pass_name, g, arrays, backend)
    cached = ChoiceCache.default().get(key)
    if cached is not None:
        return cached
    args = (*arrays, None) if pass_name == "forward" else arrays  # the forward's bias: none
    observer = registry.observer()
    registry.set_observer(None)  # the bench times the training step, not these trials
    try:
        for choice in options:
            choice.run(pass_name, args, g)  # warm-up: compilation, first-touch memory
        timings = {}
        for _ in range(ROUNDS):
            for choice in options:
                start = time.perf_counter()
                choice.run(pass_name, args, g)
                seconds = time.perf_counter() - start
                timings[choice.tile] = min(seconds, timings.get(choice.tile, seconds))
    finally:
        registry.set_observer(observer)
    _release_workspaces(backend)
    best = preferred(timings)
    ChoiceCache.default().put(key, best, timings)
    return best


def _release_workspaces(backend) -> None:
    """Let the losing algorithms' recycled workspaces go (the Numba backend's array pool
    would otherwise keep them, and peak memory with them)."""
    if backend == "numba":
        from .kernels.numba import pool

        pool.clear()


class ChoiceCache:
    """The measured choices on disk: {key: {"tile": None | 2 | 4, "ms": {...}}}."""

    _default = None

    def __init__(self, path):
        self.path = path
        self.entries = self._load()

    @classmethod
    def default(cls):
        """The cache at $SCRATCHGAN_CONV_CACHE (a file), else CACHE_FILE in scratchgan's cache folder."""
        from .datasets.download import cache_dir

        path = os.environ.get(CACHE_VARIABLE) or cache_dir() / CACHE_FILE
        if cls._default is None or cls._default.path != path:
            cls._default = cls(path)
        return cls._default

    def _load(self) -> dict:
        from .safe_io import read_json

        if not os.path.lexists(self.path):
            return {}
        try:
            return _checked_entries(read_json(self.path, "conv-algorithms"))
        except (FileRefused, ValueError) as err:
            print(f"scratchgan: ignoring the conv-algorithm cache {one_line(self.path)}: {one_line(err, 300)} "
                  f"(it will be rewritten)", file=sys.stderr, flush=True)
            return {}

    def get(self, key: str):
        entry = self.entries.get(key)
        return None if entry is None else Choice(entry["tile"])

    def put(self, key: str, choice: Choice, timings: dict) -> None:
        import json

        from .safe_io import atomic_write_text

        ms = {("im2col" if tile is None else f"winograd{tile}"): round(1000 * t, 3) for tile, t in timings.items()}
        self.entries[key] = {"tile": choice.tile, "ms": ms}
        document = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "choices": self.entries}
        try:
            atomic_write_text(self.path, json.dumps(document, indent=1, sort_keys=True))
        except (OSError, FileRefused) as err:  # a read-only cache folder costs a re-measurement, nothing else
            print(f"scratchgan: cannot write the conv-algorithm cache {one_line(self.path)}: {one_line(err, 200)}",
                  file=sys.stderr, flush=True)


#: the most entries the cache file may hold (a model has a few dozen)
MAX_ENTRIES = 10_000


def _checked_entries(document) -> dict:
    """The cache file's entries, each checked; ValueError naming the first thing wrong."""
    if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT:
        raise ValueError(f"not a {CACHE_FORMAT!r} file")
    if document.get("version") != CACHE_VERSION:
        raise ValueError(f"version {one_line(document.get('version'), 40)}, expected {CACHE_VERSION}")
    choices = document.get("choices")
    if not isinstance(choices, dict) or len(choices) > MAX_ENTRIES:
        raise ValueError(f"'choices' must be an object of at most {MAX_ENTRIES} entries")
    for key, entry in choices.items():
        if len(key) > 1000 or not isinstance(entry, dict) or "tile" not in entry:
            raise ValueError(f"entry {one_line(key, 80)}: expected an object with a 'tile'")
        tile = entry.get("tile")
        if tile is not None and (type(tile) is not int or tile not in winograd.TILES):
            raise ValueError(f"entry {one_line(key, 80)}: tile {one_line(tile, 20)}, expected null or one of {winograd.TILES}")
        ms = entry.get("ms", {})
        if not isinstance(ms, dict) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ms.values()):
            raise ValueError(f"entry {one_line(key, 80)}: 'ms' must map names to finite numbers")
    return dict(choices)


def label(name: str, args, backend: str) -> str | None:
    """The algorithm a conv op call ran, for the bench's table: None for other ops."""
    if name.startswith("winograd_conv2d_"):
        return f"winograd {args[-1]}"
    if name.startswith("strided_winograd_conv2d_"):
        return f"blocked {args[-1]}"
    if name in ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_weights"):
        filters = args[0].shape[3] if name == "conv2d_backward_weights" else args[1].shape[3]
        channels = args[1].shape[3] if name == "conv2d_backward_weights" else args[1].shape[2]
        if backend == "numba":
            from .kernels.numba.conv import FEW_CHANNELS, FEW_FILTERS

            if filters <= FEW_FILTERS:
                return "few-filter GEMM"
            if channels <= FEW_CHANNELS:
                return "few-channel im2col"
        return "im2col"
    return None
