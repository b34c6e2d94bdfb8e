import os

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
