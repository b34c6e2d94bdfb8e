"""CUDA C sources of the CuPy backend, one file per op family.

Each ``.cu`` file holds ``template <typename T> __global__`` kernels, explicitly
instantiated for float and double, written to be loaded with ``cupy.RawModule``
(NVRTC) and compiled by ``nvcc`` alike: no includes, no host code. The test suite
compiles every file with nvcc for sm_80 and sm_90 with warnings as errors, checks that
every kernel exists in both precisions, and runs every kernel on the CPU against the NumPy
reference (tests/cuda_on_cpu/emulate.cpp compiles them as C++ with g++ and calls each
(block, thread) in turn; tests/test_cuda_on_cpu.py).

``launch.py`` (which needs CuPy) loads them with ``cupy.RawModule`` and registers them
for the ops of scratchgan/ops under the backend name "cupy". This module needs nothing
but the standard library and NumPy, so the sources can be listed and checked anywhere.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
#: what launch.py gives cupy.RawModule (NVRTC); CuPy adds the GPU's architecture itself
NVRTC_OPTIONS = ("-std=c++14",)
FAMILIES = ("activations", "batchnorm", "conv", "dropout", "losses", "optim", "pooling")
_KERNEL = re.compile(r"template <typename T>\s*__global__ void (\w+)\(")
_STRUCT = re.compile(r"struct (\w+) \{\s*int ([\w\s,]+);\s*\};")


def source_path(family: str) -> Path:
    if family not in FAMILIES:
        raise KeyError(f"no CUDA source for {family!r}; families: {', '.join(FAMILIES)}")
    return HERE / f"{family}.cu"


def kernel_names(family: str) -> list:
    """The templated kernels a source defines (each instantiated for float and double)."""
    return _KERNEL.findall(source_path(family).read_text())


def name_expressions(family: str) -> list:
    """What cupy.RawModule(name_expressions=...) needs: "kernel<float>", "kernel<double>"."""
    return [f"{name}<{t}>" for name in kernel_names(family) for t in ("float", "double")]


def struct_dtype(family: str, name: str) -> np.dtype:
    """The NumPy dtype of an all-int struct a kernel takes by value (e.g. conv's Geometry),
    read from the source itself so host and device layouts cannot drift apart. A one-element
    array of it is what CuPy passes as the struct argument."""
    for struct, fields in _STRUCT.findall(source_path(family).read_text()):
        if struct == name:
            return np.dtype([(f.strip(), np.int32) for f in fields.split(",")])
    raise KeyError(f"{family}.cu defines no all-int struct {name!r}")


def define_value(family: str, name: str) -> int:
    """The integer a source ``#define``s, e.g. batchnorm.cu's REDUCE_THREADS: read from the
    source itself, so that the launches and the kernels share one number."""
    match = re.search(rf"^#define {name} (\d+)\s*$", source_path(family).read_text(), re.M)
    if match is None:
        raise KeyError(f"{family}.cu defines no integer {name}")
    return int(match.group(1))
