"""BCE values and the optimizers' update rules, against hand calculations."""
import math

import numpy as np
import pytest

from scratchgan.losses import BinaryCrossentropy, LossError, binary_accuracy
from scratchgan.optimizers import SGD, Adam, OptimizerError, RMSprop


def test_bce_value_by_hand():
    p = np.array([[0.9], [0.2], [0.6]], dtype=np.float32)
    t = np.array([[1.0], [0.0], [0.3]], dtype=np.float32)
    expected = -(math.log(0.9) + math.log(0.8) + 0.3 * math.log(0.6) + 0.7 * math.log(0.4)) / 3
    assert BinaryCrossentropy().forward(p, t) == pytest.approx(expected, rel=1e-6)


def test_bce_clips_like_keras():
    loss = BinaryCrossentropy()
    value = loss.forward(np.array([[0.0], [1.0]]), np.array([[1.0], [1.0]]))
    assert value == pytest.approx(-(math.log(1e-7) + math.log(1 - 1e-7)) / 2)
    grad = loss.backward()
    assert grad[0, 0] == 0.0  # clipped: no gradient through the clip


def test_bce_from_logits_is_stable_and_agrees():
    z = np.array([[-800.0], [0.3], [900.0]])
    t = np.array([[0.0], [1.0], [1.0]])
    value = BinaryCrossentropy(from_logits=True).forward(z, t)
    assert np.isfinite(value)
    assert value == pytest.approx(math.log1p(math.exp(-0.3)) / 3)
    zs = np.array([[-2.0], [0.5]])
    ts = np.array([[0.2], [0.9]])
    p = 1 / (1 + np.exp(-zs))
    assert BinaryCrossentropy(from_logits=True).forward(zs, ts) == pytest.approx(BinaryCrossentropy().forward(p, ts))


def test_bce_errors():
    with pytest.raises(LossError, match="probabilities in \\[0, 1\\]"):
        BinaryCrossentropy().forward(np.array([[1.5]]), np.array([[1.0]]))
    with pytest.raises(LossError, match=r"targets have shape \(3, 1\), expected the predictions' shape \(2, 1\)"):
        BinaryCrossentropy().forward(np.full((2, 1), 0.5), np.ones((3, 1)))
    with pytest.raises(LossError, match="needs a forward"):
        BinaryCrossentropy().backward()


def test_binary_accuracy():
    assert binary_accuracy(np.array([0.9, 0.4, 0.6, 0.1]), np.array([1, 1, 0, 0])) == 0.5


def _run(opt, grads):
    p = {"w": np.array([1.0, -2.0])}
    for g in grads:
        opt.step(p, {"w": np.array(g)})
    return p["w"]


def test_adam_two_steps_by_hand():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    g1, g2 = np.array([0.5, -1.0]), np.array([0.2, 0.4])
    w = np.array([1.0, -2.0])
    m = (1 - b1) * g1
    v = (1 - b2) * g1**2
    w = w - lr * math.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)
    m = b1 * m + (1 - b1) * g2
    v = b2 * v + (1 - b2) * g2**2
    w = w - lr * math.sqrt(1 - b2**2) / (1 - b1**2) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(_run(Adam(lr=lr), [g1, g2]), w, rtol=1e-12)


def test_adam_defaults_are_keras():
    opt = Adam()
    assert (opt.lr, opt.beta_1, opt.beta_2, opt.epsilon) == (1e-3, 0.9, 0.999, 1e-7)


def test_sgd_nesterov_by_hand():
    lr, mu = 0.1, 0.9
    g1, g2 = np.array([1.0, 2.0]), np.array([-1.0, 0.5])
    w = np.array([1.0, -2.0])
    u = -lr * g1
    w = w + mu * u - lr * g1
    u = mu * u - lr * g2
    w = w + mu * u - lr * g2
    np.testing.assert_allclose(_run(SGD(lr=lr, momentum=mu, nesterov=True), [g1, g2]), w, rtol=1e-12)


def test_sgd_classical_momentum_and_plain():
    np.testing.assert_allclose(_run(SGD(lr=0.1), [[1.0, 1.0]]), [0.9, -2.1])
    np.testing.assert_allclose(_run(SGD(lr=0.1, momentum=0.5), [[1.0, 0.0], [1.0, 0.0]]), [1 - 0.1 - 0.15, -2.0])


def test_rmsprop_clip_and_decay_by_hand():
    lr, rho, eps, decay = 0.01, 0.9, 1e-7, 0.5
    g1, g2 = np.array([3.0, -0.5]), np.array([0.25, -2.0])
    w = np.array([1.0, -2.0])
    c1, c2 = np.clip(g1, -1, 1), np.clip(g2, -1, 1)
    v = (1 - rho) * c1**2
    w = w - lr * c1 / np.sqrt(v + eps)
    v = rho * v + (1 - rho) * c2**2
    w = w - lr / (1 + decay * 1) * c2 / np.sqrt(v + eps)
    got = _run(RMSprop(lr=lr, rho=rho, epsilon=eps, clipvalue=1.0, decay=decay), [g1, g2])
    np.testing.assert_allclose(got, w, rtol=1e-12)


def test_missing_gradient_leaves_the_parameter_alone():
    p = {"a": np.ones(2), "b": np.ones(2)}
    Adam(lr=0.1).step(p, {"a": np.ones(2), "b": None})
    np.testing.assert_array_equal(p["b"], 1.0)
    assert np.all(p["a"] < 1)


def test_optimizer_state_round_trip():
    a, b = Adam(lr=0.1), Adam(lr=0.1)
    pa, pb = {"w": np.ones(3)}, {"w": np.ones(3)}
    g = {"w": np.array([0.1, -0.2, 0.3])}
    a.step(pa, g)
    b.load_state_dict(a.state_dict())
    pb["w"][...] = pa["w"]
    a.step(pa, g)
    b.step(pb, g)
    np.testing.assert_array_equal(pa["w"], pb["w"])


def test_optimizer_state_only_loads_into_the_kind_that_wrote_it():
    sgd = SGD(lr=0.1, momentum=0.9)
    sgd.step({"w": np.ones(3)}, {"w": np.ones(3)})
    adam = Adam(lr=0.1)
    with pytest.raises(OptimizerError, match="the state holds velocity for 'w', but Adam keeps m, v per parameter"):
        adam.load_state_dict(sgd.state_dict())
    assert adam.state == {} and adam.iterations == 0  # nothing half-loaded
    with pytest.raises(OptimizerError, match="but SGD keeps nothing per parameter"):
        SGD(lr=0.1).load_state_dict(sgd.state_dict())
    SGD(lr=0.01, momentum=0.5).load_state_dict(sgd.state_dict())  # other settings, same slots: fine


def test_optimizer_errors():
    with pytest.raises(OptimizerError, match="lr must be a positive finite number, got 0"):
        Adam(lr=0)
    for bad in (float("nan"), float("inf"), "0.1", True):
        with pytest.raises(OptimizerError, match="lr must be a positive finite number"):
            Adam(lr=bad)
    with pytest.raises(OptimizerError, match="epsilon must be a positive finite number, got nan"):
        RMSprop(epsilon=float("nan"))
    with pytest.raises(OptimizerError, match="momentum must be in"):
        SGD(momentum=float("nan"))
    with pytest.raises(OptimizerError, match="no gradient entry"):
        Adam().step({"w": np.ones(2)}, {})
    with pytest.raises(OptimizerError, match=r"gradient of 'w' has shape \(3,\)"):
        Adam().step({"w": np.ones(2)}, {"w": np.ones(3)})


def test_loaded_state_moves_beside_each_parameter_at_its_own_first_update(fake_cupy):
    """State loaded from a checkpoint is on the host; each parameter's moves to the GPU when that
    parameter is first updated, even if it had no gradient at the first step after loading."""
    from scratchgan.xp import is_device_array

    params = {"a": fake_cupy.asarray(np.ones(3)), "b": fake_cupy.asarray(np.ones(2))}
    grads = {"a": fake_cupy.asarray(np.full(3, 0.5)), "b": fake_cupy.asarray(np.full(2, 0.5))}
    saved = Adam(lr=0.1)
    saved.step({k: v.get() for k, v in params.items()}, {k: v.get() for k, v in grads.items()})
    opt = Adam(lr=0.1)
    opt.load_state_dict(saved.state_dict())
    opt.step(params, {"a": grads["a"], "b": None})  # b has no gradient this step
    opt.step(params, grads)
    assert all(is_device_array(v) for slots in opt.state.values() for v in slots.values())
