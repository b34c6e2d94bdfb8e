"""What this machine can do: the roofs every speed figure of ``scratchgan bench`` is measured against.

* **BLAS**: which library NumPy's matrix products run on, its version and the kernel it
  picked for this CPU (OpenBLAS's "architecture": SkylakeX, Haswell, ...), read with
  threadpoolctl. A kernel narrower than the CPU's vector units (OpenBLAS pinned to
  Haswell's AVX2 on an AVX-512 CPU, often by ``OPENBLAS_CORETYPE``) halves the peak;
  :func:`blas_warning` says so and names the fix. Nothing here changes a BLAS setting.
* **Compute peak**: the best float32 GEMM rate NumPy's BLAS reaches (GFLOP/s). Every
  GEMM-bound op is reported as a share of it.
* **Copy bandwidth**: the best rate at which all cores copy a large float32 array
  (bytes read + bytes written per second, in GB/s). Memory-bound ops (activations,
  batch norm, pooling, optimizer updates) are reported as a share of it.

Together they are a roofline: an op doing F FLOPs over B bytes can run no faster than
``min(peak, bandwidth * F / B)``.
"""
from __future__ import annotations

import os
import time

import numpy as np

#: SIMD width in bits of OpenBLAS's kernels for the x86 architectures it names
OPENBLAS_KERNEL_BITS = {
    "sapphirerapids": 512, "cooperlake": 512, "skylakex": 512,
    "zen": 256, "haswell": 256, "sandybridge": 256,
    "nehalem": 128, "core2": 128, "penryn": 128, "dunnington": 128, "atom": 128,
    "prescott": 128, "katmai": 128, "barcelona": 128, "bulldozer": 128, "piledriver": 128,
    "steamroller": 128, "excavator": 128,
}

#: environment variables that choose OpenBLAS's kernel or its cache blocking by hand
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

#: the variables that cap the vector width of PyTorch's CPU code, one per library inside it:
#: ATen's own kernels (element-wise ops), oneDNN (convolutions) and MKL (its GEMMs: Linear layers)
TORCH_HOLDS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_vector_bits() -> int | None:
    """Widest float SIMD the CPU offers: 512 (AVX-512F), 256 (AVX2), 128 (SSE2); None if unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    for flag, bits in (("avx512f", 512), ("avx2", 256), ("avx", 256), ("sse2", 128)):
        if flag in flags:
            return bits
    return None


def blas_info() -> dict:
    """{library, version, kernel, kernel_bits, threads, pinned_by}: NumPy's BLAS as threadpoolctl
    reads it (kernel and width None where it cannot tell, e.g. without threadpoolctl)."""
    info = {"library": None, "version": None, "kernel": None, "kernel_bits": None, "threads": None,
            "pinned_by": {k: os.environ[k] for k in OPENBLAS_PINS if k in os.environ}}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["library"] = "unknown (install threadpoolctl to see it)"
        return info
    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            break
    else:
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if not pools:
            return info
        pool = pools[0]
    kernel = pool.get("architecture")
    info.update(library=pool.get("internal_api"), version=pool.get("version"), kernel=kernel,
                threads=pool.get("num_threads"),
                kernel_bits=OPENBLAS_KERNEL_BITS.get(str(kernel).lower()) if kernel else None)
    return info


def blas_warning(info: dict, cpu_bits: int | None) -> str | None:
    """A sentence when the BLAS kernel is narrower than the CPU's vector units, with the fix."""
    if not info.get("kernel_bits") or not cpu_bits or info["kernel_bits"] >= cpu_bits:
        return None
    fix = ("unset " + " and ".join(info["pinned_by"]) + " for this command, e.g. `env -u "
           + " -u ".join(info["pinned_by"]) + " python3 -m scratchgan bench`"
           if info["pinned_by"] else "use a NumPy whose BLAS knows this CPU (a current NumPy wheel does)")
    return (f"NumPy's BLAS runs its {info['kernel']} kernel ({info['kernel_bits']}-bit vectors) on a CPU with "
            f"{cpu_bits}-bit vectors: GEMMs reach about {info['kernel_bits'] / cpu_bits:.0%} of what this CPU can do. "
            f"To measure as an unpinned machine runs: {fix}.")


def torch_hold_warning(environ=os.environ) -> str | None:
    """A sentence when PyTorch's vector width is capped for some of its libraries and not for
    others (TORCH_HOLDS): a comparison "held to AVX2" would then run PyTorch's GEMMs at full
    width. On an AVX-512 Xeon, 128x784 @ 784x128 in PyTorch on 2 threads took 86 us with
    ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2 set, and 126 us with
    MKL_ENABLE_INSTRUCTIONS=AVX2 added (docs/performance.md, "The same CPU held to AVX2")."""
    held = [name for name in TORCH_HOLDS if environ.get(name)]
    if not held or len(held) == len(TORCH_HOLDS):
        return None
    free = [name for name in TORCH_HOLDS if name not in held]
    return (f"PyTorch is held by {', '.join(f'{n}={environ[n]}' for n in held)} but not by {', '.join(free)}: "
            f"part of it still runs at this CPU's full vector width "
            f"(MKL_ENABLE_INSTRUCTIONS=AVX2 holds its GEMMs, ONEDNN_MAX_CPU_ISA=AVX2 its convolutions, "
            f"ATEN_CPU_CAPABILITY=avx2 the rest).")


def sgemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GEMM rate of NumPy's BLAS here, in GFLOP/s (2 FLOPs per multiply-add)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    out = a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Best rate, in GB/s (read + written), at which all cores copy a float32 array of
    ``megabytes``: the roof of a memory-bound op (Numba's parallel loop where it is
    installed, so that every core streams, else NumPy's copy)."""
    src = np.ones(megabytes * (1 << 20) // 4, dtype=np.float32)
    dst = np.zeros_like(src)
    copy = _parallel_copy() or (lambda s, d: np.copyto(d, s))
    copy(src, dst)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        copy(src, dst)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def _parallel_copy():
    try:
        from numba import njit, prange
    except ImportError:
        return None

    @njit(parallel=True)
    def copy(src, dst):
        for i in prange(src.size):
            dst[i] = src[i]

    return copy


def gpu_sgemm_peak(size: int = 8192, repeats: int = 5) -> float:
    """The best float32 GEMM rate CuPy (cuBLAS) reaches on the current GPU, GFLOP/s."""
    import cupy

    a = cupy.random.random((size, size), dtype=cupy.float32)
    b = cupy.random.random((size, size), dtype=cupy.float32)
    best = float("inf")
    for _ in range(repeats + 1):  # the first product loads cuBLAS
        cupy.cuda.get_current_stream().synchronize()
        start = time.perf_counter()
        a @ b
        cupy.cuda.get_current_stream().synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def gpu_copy_bandwidth(megabytes: int = 1024, repeats: int = 5) -> float:
    """Best device-to-device copy rate on the current GPU (read + written), GB/s."""
    import cupy

    src = cupy.ones(megabytes * (1 << 20) // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    best = float("inf")
    for _ in range(repeats + 1):
        cupy.cuda.get_current_stream().synchronize()
        start = time.perf_counter()
        cupy.copyto(dst, src)
        cupy.cuda.get_current_stream().synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9
