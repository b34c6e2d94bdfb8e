import http.server
import os
import threading
from functools import partial

import numpy as np
import pytest

import scratchgan

os.environ.setdefault("SCRATCHGAN_CACHE", os.path.join(os.path.dirname(__file__), ".cache-never-used"))


@pytest.fixture(autouse=True)
def numpy_backend():
    """Every test starts on the reference backend."""
    scratchgan.set_backend("numpy")
    yield
    scratchgan.set_backend("numpy")


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
