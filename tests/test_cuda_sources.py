"""The CUDA sources compile with nvcc for sm_80 and sm_90, warnings as errors, and define
every kernel in float and double. No GPU is needed; without nvcc the tests skip."""
import re
import shutil
import subprocess

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
