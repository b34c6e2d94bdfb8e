"""The backend switch and the op registry (the seam the Numba and CuPy kernels plug into)."""
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import scratchgan
from scratchgan import layers as L
from scratchgan import ops
from scratchgan.backend import BackendError


def _fresh_process(code, **env):
    clean = {k: v for k, v in os.environ.items() if k != "SCRATCHGAN_BACKEND"}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=120)


def test_numba_is_the_default_and_numpy_stands_in_only_for_a_default_that_cannot_run():
    """In a fresh process (the tests themselves start every test on numpy) nothing chosen means
    numba; where Numba cannot be imported, the default falls back to numpy and says why."""
    code = "import scratchgan; print(scratchgan.get_backend())"
    default = _fresh_process(code)
    assert default.returncode == 0, default.stderr
    assert default.stdout.split() == ["numba"]
    without_numba = _fresh_process("import sys; sys.modules['numba'] = None; " + code)
    assert without_numba.returncode == 0, without_numba.stderr
    assert without_numba.stdout.split() == ["numpy"]
    assert "the default backend 'numba' cannot run here, using 'numpy'" in without_numba.stderr
    assert "needs the numba package" in without_numba.stderr
    asked = _fresh_process("import sys; sys.modules['numba'] = None; " + code, SCRATCHGAN_BACKEND="numba")
    assert asked.returncode != 0 and "SCRATCHGAN_BACKEND='numba'" in asked.stderr  # asked for: no fallback


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown backend 'torch': expected one of numpy, numba, cupy"):
        scratchgan.set_backend("torch")


def test_cupy_backend_without_cupy_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError, as where it is not installed
    with pytest.raises(BackendError, match=r"needs CuPy .*pip install 'scratchgan\[gpu\]'"):
        scratchgan.set_backend("cupy")
    assert scratchgan.get_backend() == "numpy"  # refused, never a silent fallback


@pytest.mark.parametrize("devices, message", [
    (RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"), "found no usable CUDA GPU .*no CUDA-capable"),
    (0, "found no CUDA GPU"),
])
def test_cupy_backend_without_a_gpu_refuses_clearly(monkeypatch, devices, message):
    """CuPy installed on a machine without a GPU (or without a driver): a clear error."""
    def get_device_count():
        if isinstance(devices, Exception):
            raise devices
        return devices

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(BackendError, match=message):
        scratchgan.set_backend("cupy")
    assert scratchgan.get_backend() == "numpy"


def test_environment_variable_selects_the_backend():
    code = "import scratchgan; print(scratchgan.get_backend())"
    ok = subprocess.run([sys.executable, "-c", code], env={"SCRATCHGAN_BACKEND": "numpy", "PATH": ""},
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "numpy"
    bad = subprocess.run([sys.executable, "-c", code], env={"SCRATCHGAN_BACKEND": "tpu", "PATH": ""},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "SCRATCHGAN_BACKEND='tpu'" in bad.stderr


def test_cli_backend_flag(capsys, monkeypatch):
    from scratchgan.cli import main

    monkeypatch.setitem(sys.modules, "cupy", None)  # as on a machine without CuPy
    assert main(["--backend", "cupy", "gradcheck"]) == 2
    assert "backend 'cupy' needs CuPy" in capsys.readouterr().err
    assert main(["gradcheck", "--backend", "cupy"]) == 2  # after the command too
    assert "backend 'cupy' needs CuPy" in capsys.readouterr().err


def test_global_options_go_before_or_after_the_command():
    from scratchgan.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--backend", "numba", "train"]).backend == "numba"
    assert parser.parse_args(["train", "--backend", "numba"]).backend == "numba"
    assert parser.parse_args(["--backend", "numpy", "train", "--backend", "numba"]).backend == "numba"
    assert not hasattr(parser.parse_args(["models"]), "backend")  # absent: SCRATCHGAN_BACKEND decides


def test_a_registered_kernel_is_dispatched_for_its_backend(rng):
    """A backend overrides an op by name; layer code does not change; others fall back."""
    calls = []

    def fake_leaky_relu_forward(x, slope):
        calls.append(x.shape)
        return ops.leaky_relu_forward.reference(x, slope)

    scratchgan.set_backend("numba")  # registers the numba kernels first; the fake then replaces one
    impls = ops.OPS["leaky_relu_forward"]
    saved = impls["numba"]
    impls["numba"] = fake_leaky_relu_forward
    try:
        x = rng.standard_normal((2, 3)).astype(np.float32)
        y = L.LeakyReLU(0.2).forward(x)
        L.Dense(2).forward(x)  # an op with no kernel for this backend: the reference runs
        assert calls == [(2, 3)]
        np.testing.assert_allclose(y, np.where(x > 0, x, 0.2 * x))
    finally:
        scratchgan.set_backend("numpy")
        impls["numba"] = saved


def test_register_checks_names():
    with pytest.raises(KeyError, match="no op named 'conv3d_forward'"):
        ops.registry.register("conv3d_forward", "numba", lambda: None)
    with pytest.raises(ValueError, match="cannot register a kernel for backend 'numpy'"):
        ops.registry.register("dense_forward", "numpy", lambda: None)


def test_every_op_states_what_it_computes():
    """The reference is the readable oracle: each op's docstring says what it computes."""
    undocumented = [name for name, impls in ops.OPS.items() if not (impls["numpy"].__doc__ or "").strip()]
    assert undocumented == []


def test_numba_says_when_it_compiles_and_is_quiet_when_it_loads_from_its_cache(tmp_path):
    pytest.importorskip("numba")
    code = ("import numpy as np, scratchgan; scratchgan.set_backend('numba'); "
            "from scratchgan.ops import activations; "
            "activations.leaky_relu_forward(np.ones(3, np.float32), 0.2)")  # a kernel at every size
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "compiling the Numba kernels" in first.stderr
    assert "compiling" not in second.stderr
