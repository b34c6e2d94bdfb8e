"""The CUDA sources compile with nvcc for sm_80 and sm_90, warnings as errors, and define
every kernel in float and double; and NVRTC (what cupy.RawModule uses) compiles them with
launch.py's options and lowers every name expression. No GPU is needed; without nvcc or
libnvrtc those tests skip."""
import ctypes
import ctypes.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scratchgan.kernels import cuda

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed (the CUDA toolkit compiles the .cu sources)")


def test_every_family_has_a_source_with_kernels():
    on_disk = sorted(p.stem for p in cuda.HERE.glob("*.cu"))
    assert on_disk == sorted(cuda.FAMILIES)
    for family in cuda.FAMILIES:
        assert cuda.kernel_names(family), family
        assert "#include" not in cuda.source_path(family).read_text()  # NVRTC compiles them as they are


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("family", cuda.FAMILIES)
def test_nvcc_compiles_without_warnings(family, arch, tmp_path):
    out = tmp_path / f"{family}.cubin"
    result = subprocess.run([NVCC, f"-arch={arch}", "-cubin", "-Werror", "all-warnings", "-o", str(out),
                             str(cuda.source_path(family))], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    nm = shutil.which("nm")
    if nm is None:
        return
    symbols = subprocess.run([nm, str(out)], capture_output=True, text=True).stdout
    for name in cuda.kernel_names(family):
        for code in ("f", "d"):  # Itanium mangling of name<float> / name<double>
            assert re.search(rf"_Z{len(name)}{name}I{code}E", symbols), f"{name}<{code}> missing in {family}.cu"


@needs_nvcc
def test_a_broken_kernel_fails_the_check(tmp_path):
    """The check is real: an unused variable is a warning, and so an error."""
    bad = tmp_path / "bad.cu"
    bad.write_text("template <typename T> __global__ void k(T* x) { int unused = 3; x[0] = T(1); }\n"
                   "template __global__ void k<float>(float*);\n")
    result = subprocess.run([NVCC, "-arch=sm_80", "-cubin", "-Werror", "all-warnings", "-o", str(tmp_path / "b.cubin"),
                             str(bad)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "unused" in result.stderr


def test_name_expressions_for_cupy():
    assert "adam_update<float>" in cuda.name_expressions("optim")
    assert "adam_update<double>" in cuda.name_expressions("optim")
    with pytest.raises(KeyError, match="no CUDA source for 'fft'"):
        cuda.source_path("fft")


def _load_nvrtc():
    """libnvrtc through ctypes (the nvidia-cuda-nvrtc wheel, or the system's); None if absent."""
    candidates = []
    try:
        import nvidia

        for root in nvidia.__path__:
            candidates += sorted(Path(root).glob("**/libnvrtc.so*"))
    except ImportError:
        pass
    system = ctypes.util.find_library("nvrtc")
    if system:
        candidates.append(system)
    for candidate in candidates:
        try:
            for builtins in sorted(Path(candidate).parent.glob("libnvrtc-builtins.so*")):  # a wheel's own copy,
                ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)  # which NVRTC would not find by itself
            return ctypes.CDLL(str(candidate))
        except OSError:
            continue
    return None


NVRTC = _load_nvrtc()


def nvrtc_compile(source: str, name_expressions, options):
    """(status, log, {expression: lowered name}, ptx): what cupy.RawModule does before loading."""
    prog = ctypes.c_void_p()
    assert NVRTC.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernels.cu", 0, None, None) == 0
    try:
        for expression in name_expressions:
            assert NVRTC.nvrtcAddNameExpression(prog, expression.encode()) == 0
        opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        status = NVRTC.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        NVRTC.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        NVRTC.nvrtcGetProgramLog(prog, log)
        if status != 0:
            return status, log.value.decode(), {}, ""
        lowered = {}
        for expression in name_expressions:
            name = ctypes.c_char_p()
            assert NVRTC.nvrtcGetLoweredName(prog, expression.encode(), ctypes.byref(name)) == 0
            lowered[expression] = name.value.decode()
        NVRTC.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        NVRTC.nvrtcGetPTX(prog, ptx)
        return status, log.value.decode(), lowered, ptx.value.decode()
    finally:
        NVRTC.nvrtcDestroyProgram(ctypes.byref(prog))


needs_nvrtc = pytest.mark.skipif(NVRTC is None, reason="libnvrtc is not installed (pip install nvidia-cuda-nvrtc)")


@needs_nvrtc
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize("family", cuda.FAMILIES)
def test_nvrtc_compiles_each_source_as_cupy_will_load_it(family, arch):
    """cupy.RawModule's path without a GPU: NVRTC with launch.py's options, every
    "kernel<float>" / "kernel<double>" name expression lowered to an entry point of the PTX."""
    expressions = cuda.name_expressions(family)
    status, log, lowered, ptx = nvrtc_compile(cuda.source_path(family).read_text(), expressions,
                                              [*cuda.NVRTC_OPTIONS, f"--gpu-architecture={arch}"])
    assert status == 0, log
    assert sorted(lowered) == sorted(expressions)
    for expression, name in lowered.items():
        assert f".entry {name}(" in ptx, expression


@needs_nvrtc
def test_nvrtc_reports_a_broken_source():
    status, log, _, _ = nvrtc_compile("template <typename T> __global__ void k(T* x) { x[0] = undefined; }\n"
                                      "template __global__ void k<float>(float*);\n", ["k<float>"],
                                      [*cuda.NVRTC_OPTIONS, "--gpu-architecture=compute_90"])
    assert status != 0 and "undefined" in log
