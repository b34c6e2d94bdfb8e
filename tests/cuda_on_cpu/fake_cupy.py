"""A stand-in for CuPy that runs scratchgan's cupy backend on the CPU, for machines without a GPU.

* Arrays are NumPy arrays of a subclass whose module says "cupy", so scratchgan treats them
  as device arrays: a host array handed to a layer with "device" weights is refused, as on a GPU.
* ``RawModule(...).get_function("im2col<float>")`` returns the kernel compiled for the CPU
  by emulate.cpp (the same .cu source, each (block, thread) run in turn). Before each call
  the arguments are checked against the kernel's parameter list in the .cu file: count,
  order, pointer element types, ``long long`` / ``int`` / ``T`` / ``float`` scalars, structs,
  and that every array is C-contiguous. A launch with a wrong argument fails here.
* Every other CuPy function is NumPy's, its array results wrapped as "device" arrays.
* Every read back to the host (``.get()``, ``float()``, ``bool()``) is logged in ``READS``.
* ``ElementwiseKernel`` knows only launch.py's uniform generator (splitmix64, re-derived in
  NumPy's wrapping uint64 arithmetic).

What this shows: launch.py, the layers, optimizers and trainer run end to end on the CUDA
kernels' arithmetic and keep every array on the "device". What it cannot: races, launch
limits, NVRTC, cuBLAS, speed. Those wait for a real GPU (the same tests run there with CuPy).
"""
from __future__ import annotations

import ctypes
import functools
import re
import types
from pathlib import Path

import numpy as np

CUDA_DIR = Path(__file__).resolve().parents[2] / "kernels" / "cuda"
_SIGNATURE = re.compile(r"template <typename T>\s*__global__ void (\w+)\(([^)]*)\)\s*\{")


#: the size of every array read back to the host ("device to host" copies), in order
READS: list = []


class ndarray(np.ndarray):
    """A NumPy array that scratchgan takes for a CuPy array; reads back to the host are logged."""

    def get(self):
        READS.append(self.size)
        return np.array(self.view(np.ndarray))

    def __float__(self):
        READS.append(self.size)
        return float(self.view(np.ndarray))

    def __bool__(self):
        READS.append(self.size)
        return bool(self.view(np.ndarray))


ndarray.__module__ = "cupy._core.core"


def _device(result):
    if isinstance(result, tuple):
        return tuple(_device(r) for r in result)
    if isinstance(result, np.ndarray) and not isinstance(result, ndarray):
        return result.view(ndarray)
    return result


@functools.lru_cache(maxsize=None)
def _signatures():
    """{kernel name: [parameter type, ...]} from every .cu file."""
    out = {}
    for path in CUDA_DIR.glob("*.cu"):
        for name, params in _SIGNATURE.findall(path.read_text()):
            out[name] = [" ".join(p.split()[:-1]).replace("const ", "") for p in params.split(",")]
    return out


_POINTER_DTYPES = {"unsigned char*": np.uint8, "signed char*": np.int8, "float*": np.float32}
_SCALARS = {"long long": (np.int64, ctypes.c_longlong), "int": (np.int32, ctypes.c_int),
            "float": (np.float32, ctypes.c_float)}


class _Kernel:
    def __init__(self, emulator, name, ctype, params):
        self.fn = getattr(emulator, f"{name}_{'f' if ctype == 'float' else 'd'}")
        self.name, self.params = name, params
        self.dtype = np.dtype(np.float32 if ctype == "float" else np.float64)

    def __call__(self, grid, block, args, shared_mem=0):
        assert len(grid) >= 1 and len(block) >= 1 and all(int(g) >= 1 for g in (*grid, *block)), (grid, block)
        assert len(args) == len(self.params), f"{self.name}: {len(args)} arguments for {len(self.params)} parameters"
        self.fn(*(self._convert(i, p, a) for i, (p, a) in enumerate(zip(self.params, args))))

    def _convert(self, i, param, arg):
        where = f"{self.name} argument {i} ({param})"
        if param.endswith("*"):
            want = self.dtype if param == "T*" else np.dtype(_POINTER_DTYPES[param])
            assert isinstance(arg, np.ndarray) and arg.dtype == want, f"{where}: got {type(arg).__name__} {getattr(arg, 'dtype', '')}"
            assert arg.flags.c_contiguous, f"{where}: not C-contiguous"
            return arg.ctypes.data_as(ctypes.c_void_p)
        if param == "T":
            assert type(arg) is self.dtype.type, f"{where}: got {type(arg).__name__}, expected {self.dtype}"
            return (ctypes.c_float if self.dtype == np.float32 else ctypes.c_double)(arg)
        if param in _SCALARS:
            numpy_type, ctype = _SCALARS[param]
            assert type(arg) is numpy_type, f"{where}: got {type(arg).__name__}, expected {numpy_type.__name__}"
            return ctype(arg)
        # a struct passed by value: a one-element structured array with the struct's int fields
        assert isinstance(arg, np.ndarray) and arg.dtype.names and arg.shape == (1,), f"{where}: got {arg!r}"
        return _struct_type(param, arg.dtype.names)(*(int(arg[f][0]) for f in arg.dtype.names))


@functools.lru_cache(maxsize=None)
def _struct_type(name, fields):
    return type(name, (ctypes.Structure,), {"_fields_": [(f, ctypes.c_int) for f in fields]})


class RawModule:
    def __init__(self, code, options=(), name_expressions=(), **kwargs):
        self.code, self.name_expressions = code, list(name_expressions)

    def get_function(self, expression):
        assert expression in self.name_expressions, f"{expression} was not among the module's name_expressions"
        name, ctype = re.fullmatch(r"(\w+)<(float|double)>", expression).groups()
        assert re.search(rf"__global__ void {name}\(", self.code), f"{name} is not defined in this module's source"
        return _Kernel(_EMULATOR, name, ctype, _signatures()[name])


def _splitmix_uniform(seed, u):
    """launch.py's uniform generator: u[i] = top 24 bits of splitmix64(seed[0] + i * golden) / 2^24,
    the seed read from a one-element uint64 device buffer."""
    if not (isinstance(seed, ndarray) and seed.dtype == np.uint64 and seed.shape == (1,)):
        raise TypeError(f"the uniform kernel reads its seed from a (1,) uint64 device buffer, got {seed!r}")
    seed = seed.view(np.ndarray)[0]
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(u.size, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u[...] = ((z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)).reshape(u.shape)


def ElementwiseKernel(in_params, out_params, operation, name="kernel", **kwargs):
    if name != "scratchgan_uniform" or in_params != "raw uint64 seed":
        raise NotImplementedError(f"the fake CuPy has no ElementwiseKernel {name!r}")
    return _splitmix_uniform


_EMULATOR = None


def make(emulator) -> types.ModuleType:
    """A module to put in sys.modules["cupy"], its kernels run by the ctypes library ``emulator``."""
    global _EMULATOR
    _EMULATOR = emulator
    module = types.ModuleType("cupy")
    module.EMULATED = True
    module.ndarray = ndarray
    module.RawModule = RawModule
    module.ElementwiseKernel = ElementwiseKernel
    module.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
    )

    def numpy_function(name):
        fn = getattr(np, name)
        if isinstance(fn, type) or not callable(fn):
            return fn  # dtypes and constants as they are

        def wrapped(*args, **kwargs):
            return _device(fn(*args, **kwargs))

        return wrapped

    module.__getattr__ = numpy_function
    return module
