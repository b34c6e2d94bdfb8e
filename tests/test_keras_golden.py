"""Forward outputs and gradients against Keras 3's own, for 22 layer cases (float32).

The data (tests/data/layers.*) is a copy of shared/data/keras-golden: each case is a
layer built by Keras from x with stored parameters; y = layer(x, training=True), and
dx and the parameter gradients are the gradients of sum(y * dy).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from scratchgan import layers as L

DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((DATA / "layers.json").read_text())
ARRAYS = np.load(DATA / "layers.npz")


def _make(case):
    kwargs = dict(case["kwargs"])
    if case["layer"] == "Activation":
        return L.Activation(kwargs["activation"])
    return getattr(L, case["layer"])(**kwargs)


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=lambda c: f"{c['case']}-{c['layer']}")
def test_matches_keras(case):
    key = case["case"]
    layer = _make(case)
    x = ARRAYS[f"{key}/x"]
    assert x.dtype == np.float32
    layer.build(x.shape)
    for name in case["params"]:
        store = layer.params if name in layer.params else layer.buffers
        assert store[name].shape == ARRAYS[f"{key}/param/{name}"].shape, f"{name}: layout differs from Keras"
        store[name][...] = ARRAYS[f"{key}/param/{name}"]
    y = layer.forward(x, training=True)
    assert y.shape == tuple(case["output_shape"])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ARRAYS[f"{key}/y"], rtol=1e-4, atol=2e-5)
    dx = layer.backward(ARRAYS[f"{key}/dy"])
    np.testing.assert_allclose(dx, ARRAYS[f"{key}/dx"], rtol=1e-4, atol=2e-5)
    for name in case["grads"]:
        np.testing.assert_allclose(layer.grads[name], ARRAYS[f"{key}/grad/{name}"], rtol=1e-4, atol=5e-5)
