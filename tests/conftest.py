import ctypes
import http.server
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import scratchgan

NEVER_USED = os.path.join(os.path.dirname(__file__), ".cache-never-used")
os.environ.setdefault("SCRATCHGAN_CACHE", NEVER_USED)


@pytest.fixture(autouse=True)
def numpy_backend():
    """Every test starts on the reference backend, with convolutions chosen as by default."""
    scratchgan.set_backend("numpy")
    scratchgan.set_conv_algo("auto")
    yield
    scratchgan.set_backend("numpy")
    scratchgan.set_conv_algo("auto")


@pytest.fixture(autouse=True, scope="session")
def conv_algorithm_cache(tmp_path_factory):
    """Measured convolution choices go to a file of this test session, not the user's cache,
    and nothing lands in the cache folder the tests point at but must never use."""
    path = tmp_path_factory.mktemp("conv-cache") / "conv-algorithms.json"
    os.environ["SCRATCHGAN_CONV_CACHE"] = str(path)
    yield path
    left = sorted(os.listdir(NEVER_USED)) if os.path.isdir(NEVER_USED) else []
    assert left == [], f"the test session wrote {left} into {NEVER_USED}, the cache folder no test may use"


@pytest.fixture
def rng(request):
    """A Generator seeded from the test's name; the seed is printed (shown on failure)."""
    seed = sum(map(ord, request.node.name)) % (2**31)
    print(f"rng seed: {seed}")
    return np.random.default_rng(seed)


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server over tmp_path/www (loopback only); yields (base url, folder)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", www
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def cuda_emulator(tmp_path_factory):
    """kernels/cuda/*.cu compiled for the CPU by g++ (tests/cuda_on_cpu/emulate.cpp), as a ctypes library."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is needed to run the CUDA kernels on the CPU")
    source = Path(__file__).parent / "cuda_on_cpu" / "emulate.cpp"
    lib = tmp_path_factory.mktemp("cuda_on_cpu") / "emulate.so"
    result = subprocess.run([gxx, "-O1", "-shared", "-fPIC", "-pthread", "-Wall", "-Wextra", "-Werror", "-o", str(lib), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(lib))


@pytest.fixture
def fake_cupy(cuda_emulator, monkeypatch):
    """The cupy backend with CuPy replaced by tests/cuda_on_cpu/fake_cupy.py: launch.py and the
    CUDA kernels' arithmetic run on the CPU. The ops registry is restored afterwards."""
    from cuda_on_cpu import fake_cupy as fake

    from scratchgan import ops

    saved = {name: dict(impls) for name, impls in ops.OPS.items()}
    monkeypatch.setitem(sys.modules, "cupy", fake.make(cuda_emulator))
    sys.modules.pop("scratchgan.kernels.cuda.launch", None)  # re-imported against the fake
    yield sys.modules["cupy"]
    scratchgan.set_backend("numpy")
    sys.modules.pop("scratchgan.kernels.cuda.launch", None)
    for name, impls in saved.items():
        ops.OPS[name].clear()
        ops.OPS[name].update(impls)
