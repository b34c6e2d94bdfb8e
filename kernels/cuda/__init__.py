"""CUDA C sources of the CuPy backend, one file per op family (issue 5).

Each ``.cu`` file holds ``template <typename T> __global__`` kernels, explicitly
instantiated for float and double, written to be loaded with ``cupy.RawModule``
(NVRTC) and compiled by ``nvcc`` alike: no includes, no host code. The test suite
compiles every file with nvcc for sm_80 and sm_90 with warnings as errors, checks that
every kernel exists in both precisions, and runs every kernel on the CPU against the NumPy
reference (tests/cuda_on_cpu/emulate.cpp compiles them as C++ with g++ and calls each
(block, thread) in turn; tests/test_cuda_on_cpu.py).

Not wired to a backend yet: ``set_backend("cupy")`` still refuses, and the kernels have
not run on a GPU (races, launch shapes and speed are unchecked). What waits for a GPU is listed in issue 5.
"""
from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent
FAMILIES = ("activations", "batchnorm", "conv", "dropout", "losses", "optim", "pooling")
_KERNEL = re.compile(r"template <typename T>\s*__global__ void (\w+)\(")


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
