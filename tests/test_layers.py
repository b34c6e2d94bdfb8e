"""Keras semantics: shapes, layouts, parameter counts, modes, caches and clear errors."""
import numpy as np
import pytest

from scratchgan import Sequential
from scratchgan import layers as L
from scratchgan.layers import LayerError
from scratchgan.zoo import mlp


@pytest.mark.parametrize(
    "layer,in_shape,out_shape",
    [
        (L.Conv2D(4, 3, strides=2, padding="same"), (1, 7, 8, 2), (1, 4, 4, 4)),
        (L.Conv2D(4, 5, strides=1, padding="valid"), (2, 9, 7, 1), (2, 5, 3, 4)),
        (L.Conv2DTranspose(3, 5, strides=2, padding="same"), (2, 7, 7, 4), (2, 14, 14, 3)),
        (L.Conv2DTranspose(3, 3, strides=2, padding="valid"), (1, 5, 6, 2), (1, 11, 13, 3)),
        (L.Conv2DTranspose(3, 1, strides=3, padding="valid"), (1, 2, 2, 2), (1, 6, 6, 3)),
        (L.MaxPooling2D(2), (1, 7, 9, 2), (1, 3, 4, 2)),
        (L.UpSampling2D(2), (2, 3, 4, 1), (2, 6, 8, 1)),
        (L.Reshape((7, 7, 4)), (3, 196), (3, 7, 7, 4)),
        (L.Flatten(), (2, 3, 4, 5), (2, 60)),
    ],
)
def test_output_shapes(rng, layer, in_shape, out_shape):
    y = layer.forward(rng.standard_normal(in_shape).astype(np.float32))
    assert y.shape == out_shape
    assert layer.output_shape == (None, *out_shape[1:])


def test_weight_layouts_follow_keras():
    conv = L.Conv2D(8, (3, 5))
    conv.build((None, 10, 10, 2))
    assert conv.params["kernel"].shape == (3, 5, 2, 8)
    deconv = L.Conv2DTranspose(8, 4)
    deconv.build((None, 10, 10, 2))
    assert deconv.params["kernel"].shape == (4, 4, 8, 2)
    dense = L.Dense(7)
    dense.build((None, 13))
    assert dense.params["kernel"].shape == (13, 7) and dense.params["bias"].shape == (7,)


def test_mlp_parameter_counts_equal_keras():
    g, d, _ = mlp(seed=0)
    assert g.count_params() == 114_064
    assert d.count_params() == 100_609
    text = g.summary(print_fn=None)
    assert "114,064" in text and "(None, 28, 28, 1)" in text


def test_batchnorm_counts_moving_statistics_but_does_not_train_them():
    bn = L.BatchNormalization()
    bn.build((None, 5, 5, 3))
    assert bn.count_params() == 12 and set(bn.params) == {"gamma", "beta"}


def test_batchnorm_modes(rng):
    bn = L.BatchNormalization(momentum=0.9)
    x = (3 * rng.standard_normal((64, 4)) + 5).astype(np.float32)
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), np.sqrt(x.var(0) / (x.var(0) + 1e-3)), rtol=1e-4)
    np.testing.assert_allclose(bn.buffers["moving_mean"], 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["moving_variance"], 0.9 + 0.1 * x.var(0), rtol=1e-5)
    before = bn.buffers["moving_mean"].copy()
    y_inf = bn.forward(x, training=False)  # moving statistics, no update, no cache
    np.testing.assert_array_equal(bn.buffers["moving_mean"], before)
    expected = (x - before) / np.sqrt(bn.buffers["moving_variance"] + 1e-3)
    np.testing.assert_allclose(y_inf, expected, rtol=1e-5)


def test_dropout_is_inverted_and_off_in_inference(rng):
    drop = L.Dropout(0.25, seed=3)
    x = np.ones((200, 50), dtype=np.float32)
    y = drop.forward(x, training=True)
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(drop.backward(np.ones_like(y)), y)
    np.testing.assert_array_equal(drop.forward(x, training=False), x)


def test_leaky_relu_default_slope_is_keras():
    y = L.LeakyReLU().forward(np.array([[-1.0, 2.0]], dtype=np.float32))
    np.testing.assert_allclose(y, [[-0.3, 2.0]])


def test_gradients_accumulate_until_zero_grad(rng):
    dense = L.Dense(3)
    x1, x2 = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    dy = rng.standard_normal((4, 3))
    dense.forward(x1); dense.backward(dy)
    dense.forward(x2); dense.backward(dy)
    np.testing.assert_allclose(dense.grads["kernel"], (x1 + x2).T @ dy, rtol=1e-5)
    dense.zero_grad()
    assert dense.grads["kernel"] is None


def test_frozen_backward_gives_dx_and_no_parameter_gradients(rng):
    _, d, _ = mlp(seed=1)
    x = rng.standard_normal((3, 28, 28, 1)).astype(np.float32)
    y = d.forward(x)
    dx = d.backward(np.ones_like(y), need_param_grads=False)
    assert dx.shape == x.shape and np.any(dx != 0)
    assert all(g is None for g in d.grads.values())


@pytest.mark.parametrize(
    "make,in_shape",
    [
        (lambda: L.Dense(5, activation="tanh"), (4, 6)),
        (lambda: L.Conv2D(3, 3, strides=2, padding="same"), (2, 7, 6, 2)),
        (lambda: L.Conv2DTranspose(3, 5, strides=2, padding="same", activation="tanh"), (2, 4, 3, 2)),
        (lambda: L.BatchNormalization(), (5, 4)),  # the default: the full backward, dx dropped
    ],
)
def test_backward_without_input_grad_adds_the_same_parameter_gradients(rng, make, in_shape):
    from scratchgan.ops import registry

    layer = make()
    x = rng.standard_normal(in_shape).astype(np.float32)
    dy = rng.standard_normal(layer.forward(x).shape).astype(np.float32)
    dx = layer.backward(dy)
    full = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    layer.forward(x)
    calls = []
    registry.set_observer(lambda name, args, out, dt: calls.append(name))
    try:
        assert layer.backward(dy, need_input_grad=False) is None
    finally:
        registry.set_observer(None)
    assert dx.shape == x.shape and set(full) == set(layer.grads)
    for key, grad in full.items():
        np.testing.assert_array_equal(layer.grads[key], grad)
    if not isinstance(layer, L.BatchNormalization):  # a linear layer skips its backward-data op
        assert calls and not any(name.endswith("_backward_data") for name in calls), calls


def test_a_model_without_input_grad_stops_at_its_first_learning_layer(rng):
    from scratchgan.ops import registry

    _, d, _ = mlp(seed=1)  # Flatten, Dense, LeakyReLU, Dense
    x = rng.standard_normal((3, 28, 28, 1)).astype(np.float32)
    dy = np.ones_like(d.forward(x))
    d.backward(dy)
    full = {k: v.copy() for k, v in d.grads.items()}
    d.zero_grad()
    d.forward(x)
    shapes = []
    registry.set_observer(lambda name, args, out, dt: shapes.append((name, getattr(out, "shape", None))))
    try:
        assert d.backward(dy, need_input_grad=False) is None
    finally:
        registry.set_observer(None)
    for key, grad in full.items():
        np.testing.assert_allclose(d.grads[key], grad, rtol=1e-6)
    assert ("dense_backward_data", (3, 784)) not in shapes  # the first Dense computed no dx
    assert ("dense_backward_data", (3, 128)) in shapes  # the second one did: the first needs it
    assert all(layer._cache is None for layer in d.layers)  # Flatten's cache is dropped too
    # a frozen model asked for no dx has nothing to compute
    d.zero_grad()
    d.forward(x)
    shapes.clear()
    registry.set_observer(lambda name, args, out, dt: shapes.append(name))
    try:
        assert d.backward(dy, need_param_grads=False, need_input_grad=False) is None
    finally:
        registry.set_observer(None)
    assert shapes == [] and all(g is None for g in d.grads.values())
    assert all(layer._cache is None for layer in d.layers)


def test_inference_forward_keeps_no_cache(rng):
    dense = L.Dense(2)
    dense.forward(rng.standard_normal((2, 3)), training=False)
    with pytest.raises(LayerError, match="forward"):
        dense.backward(np.ones((2, 2)))


def test_backward_never_uses_an_older_forwards_cache(rng):
    """training forward, then inference forward, then backward: refused, not answered
    with the first forward's gradients."""
    dense = L.Dense(2)
    dense.forward(rng.standard_normal((2, 3)))
    dense.forward(rng.standard_normal((2, 3)), training=False)
    with pytest.raises(LayerError, match="forward"):
        dense.backward(np.ones((2, 2)))


def test_each_forward_serves_one_backward(rng):
    dense = L.Dense(2)
    dense.forward(rng.standard_normal((2, 3)))
    dense.backward(np.ones((2, 2)))
    with pytest.raises(LayerError, match="forward"):
        dense.backward(np.ones((2, 2)))


@pytest.mark.parametrize(
    "layer,x,message",
    [
        (L.Dense(3), np.ones((2, 3, 4), np.float32), r"rank 2 .*got shape \(2, 3, 4\)"),
        (L.Conv2D(3, 3), np.ones((2, 8, 8), np.float32), r"rank 4 .*height, width, channels"),
        (L.Dense(3), np.ones((2, 3), np.int64), "floating-point input, got dtype int64"),
        (L.Conv2D(3, 5), np.ones((1, 3, 3, 1), np.float32), "smaller than the kernel"),
        (L.Reshape((5, 5)), np.ones((2, 24), np.float32), "cannot reshape"),
    ],
)
def test_bad_input_is_a_clear_error(layer, x, message):
    with pytest.raises(LayerError, match=message):
        layer.forward(x)


def test_input_shape_is_checked_after_build(rng):
    dense = L.Dense(2)
    dense.forward(rng.standard_normal((2, 3)))
    with pytest.raises(LayerError, match=r"built for inputs of shape \(None, 3\)"):
        dense.forward(rng.standard_normal((2, 4)))


def test_bad_dy_shape_is_a_clear_error(rng):
    dense = L.Dense(2)
    dense.forward(rng.standard_normal((2, 3)))
    with pytest.raises(LayerError, match=r"dy has shape \(2, 3\), expected the output's shape \(2, 2\)"):
        dense.backward(np.ones((2, 3)))


@pytest.mark.parametrize("kwargs,message", [({"padding": "full"}, "padding must be"), ({"strides": 0}, "strides must be positive")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        L.Conv2D(3, 3, **kwargs)


def test_float32_stays_float32(rng):
    g, d, _ = mlp(seed=0)
    z = rng.standard_normal((4, 100)).astype(np.float32)
    img = g.forward(z)
    p = d.forward(img)
    assert img.dtype == np.float32 and p.dtype == np.float32
    assert d.backward(np.ones_like(p)).dtype == np.float32


def test_sequential_save_and_load_weights(tmp_path, rng):
    g1, _, _ = mlp(seed=0)
    g2, _, _ = mlp(seed=5)
    g1.save_weights(tmp_path / "g.npz")
    g2.load_weights(tmp_path / "g.npz")
    z = rng.standard_normal((3, 100)).astype(np.float32)
    np.testing.assert_array_equal(g1.predict(z), g2.predict(z))


def test_load_weights_of_another_model_is_refused(tmp_path):
    g, d, _ = mlp(seed=0)
    g.save_weights(tmp_path / "g.npz")
    with pytest.raises(ValueError, match=r"dense/kernel has shape \(100, 128\), model 'mlp_discriminator' expects \(784, 128\)"):
        d.load_weights(tmp_path / "g.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an .npz archive"):
        g.load_weights(tmp_path / "junk.npz")


def test_same_seed_same_model():
    a, _, _ = mlp(seed=3)
    b, _, _ = mlp(seed=3)
    c, _, _ = mlp(seed=4)
    np.testing.assert_array_equal(a.params["dense/kernel"], b.params["dense/kernel"])
    assert not np.array_equal(a.params["dense/kernel"], c.params["dense/kernel"])


def test_layer_names_are_unique_in_a_model():
    model = Sequential([L.Dense(3), L.Dense(2), L.Dense(1)], input_shape=(4,))
    assert [l.name for l in model.layers] == ["dense", "dense_1", "dense_2"]
    assert set(model.params) == {f"{n}/{k}" for n in ("dense", "dense_1", "dense_2") for k in ("kernel", "bias")}


def test_a_forward_that_does_not_return_y_and_cache_is_a_clear_error():
    class OldStyle(L.Layer):
        def _forward(self, x, training):
            return 2 * x  # the contract is (y, cache)

    with pytest.raises(L.LayerError, match=r"_forward must return \(y, cache\), got ndarray"):
        OldStyle().forward(np.ones((2, 3), np.float32))
