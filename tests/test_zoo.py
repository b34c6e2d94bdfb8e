"""The five tutorial models: Keras's parameter counts, shapes, and one training step each."""
import math

import numpy as np
import pytest

from scratchgan import zoo
from scratchgan.batches import sample_latent, standard_normal
from scratchgan.train import GANTrainer

KERAS_COUNTS = {  # docs/tutorials.md: Keras 3's model.summary() totals
    "mlp": (114_064, 100_609),
    "dcgan_bn": (2_343_681, 213_633),
    "dcgan_upsample": (6_763_777, 13_315_841),
    "dcgan": (1_164_289, 40_705),
    "cifar_frog": (6_264_579, 790_913),
}


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_parameter_counts_equal_keras(name):
    g, d, recipe = zoo.build(name, seed=0)
    assert (g.count_params(), d.count_params()) == KERAS_COUNTS[name]
    assert recipe.model == name


def test_batch_norm_moving_statistics_are_counted():
    g, d, _ = zoo.dcgan_bn(seed=0)
    assert sum(b.size for b in g.buffers.values()) == 25_472
    assert sum(b.size for b in d.buffers.values()) == 384


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_generator_output_fits_discriminator(name):
    g, d, recipe = zoo.build(name, seed=0)
    z = sample_latent(np.random.default_rng(0), 3, recipe)
    images = g.predict(z)
    assert images.shape == (3, *recipe.image_shape) and images.dtype == np.float32
    lo, hi = recipe.data_range
    assert images.min() >= lo and images.max() <= hi
    p = d.predict(images)
    assert p.shape == (3, 1) and np.all((p > 0) & (p < 1))


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_one_training_step_of_each_model(name):
    g, d, recipe = zoo.build(name, seed=1)
    recipe.override(batch_size=4)
    rng = np.random.default_rng(0)
    lo, hi = recipe.data_range
    data = rng.uniform(lo, hi, (12, *recipe.image_shape)).astype(np.float32)
    t = GANTrainer(g, d, recipe, data, seed=1)
    before = {k: v.copy() for k, v in {**g.params, **{"D" + k: v for k, v in d.params.items()}}.items()}
    d_loss, acc, g_loss = t.step()
    assert np.isfinite(d_loss) and np.isfinite(g_loss) and 0 <= acc <= 1
    after = {**g.params, **{"D" + k: v for k, v in d.params.items()}}
    assert all(not np.array_equal(before[k], after[k]) for k in before), "every parameter moves"


def test_concat_mode_shows_d_one_stacked_batch_with_the_recipe_labels(monkeypatch):
    g, d, recipe = zoo.cifar_frog(seed=0)
    recipe.override(batch_size=3)
    data = np.zeros((5, 32, 32, 3), np.float32)
    t = GANTrainer(g, d, recipe, data, seed=0)
    seen = []
    original = t.updates.bce.forward
    monkeypatch.setattr(t.updates.bce, "forward", lambda p, y, **kw: (seen.append((p.shape, np.array(y))), original(p, y, **kw))[1])
    t.step()
    (d_shape, d_target), (g_shape, g_target) = seen
    assert d_shape == (6, 1) and g_shape == (3, 1)
    # real -> 0, fake -> 1 in the book, plus U(0, 0.05) noise; G is pushed towards 0 ("real")
    assert np.all((d_target[:3] >= 0) & (d_target[:3] < 0.05)) and np.all((d_target[3:] >= 1) & (d_target[3:] < 1.05))
    assert np.all(d_target[:3] > 0) and np.all(g_target == 0)


def test_half_batch_and_sum_modes(monkeypatch):
    for name in ("dcgan", "dcgan_bn"):
        g, d, recipe = zoo.build(name, seed=0)
        recipe.override(batch_size=8)
        t = GANTrainer(g, d, recipe, np.zeros((20, 28, 28, 1), np.float32), seed=0)
        shapes, updates = [], []
        monkeypatch.setattr(t.updates.bce, "forward", lambda p, y, f=t.updates.bce.forward, **kw: (shapes.append(p.shape), f(p, y, **kw))[1])
        monkeypatch.setattr(t.d_opt, "step", lambda p, gr, f=t.d_opt.step: (updates.append(1), f(p, gr))[1])
        t.step()
        if name == "dcgan":  # 4 real + 4 fake stacked, then G on 8
            assert shapes == [(8, 1), (8, 1)] and len(updates) == 1
        else:  # real and fake batches through D separately, one update on the summed loss
            assert shapes == [(8, 1), (8, 1), (8, 1)] and len(updates) == 1


@pytest.mark.parametrize("order", ["sequential", "shuffle"])
def test_data_orders_visit_every_image_once_per_epoch(order):
    g, d, recipe = zoo.mlp(seed=0)
    recipe.override(data_order=order, batch_size=4)
    data = np.arange(12, dtype=np.float32)[:, None, None, None] * np.ones((1, 28, 28, 1), np.float32)
    t = GANTrainer(g, d, recipe, data, seed=0)
    epoch = np.concatenate([t.batches.real(4, i)[:, 0, 0, 0] for i in range(3)])
    assert sorted(epoch) == list(range(12))
    assert (list(epoch) == list(range(12))) == (order == "sequential")
    np.testing.assert_array_equal(t.batches.real(4, 0), t.batches.real(4, 0))  # a pure function of the draw


@pytest.mark.parametrize("shape", [(5001,), (128, 100), (3, 7, 11)])
def test_latent_normals_are_standard_normal_and_a_pure_function_of_the_generator(shape):
    """The Box-Muller draws: N(0, 1) in float32 (Kolmogorov-Smirnov distance to the normal's
    CDF over 200,000 draws), the two halves of each pair uncorrelated (also in their squares,
    which share a radius), odd sizes filled, and the same generator state the same numbers."""
    z = standard_normal(np.random.default_rng(7), shape)
    assert z.shape == shape and z.dtype == np.float32 and np.isfinite(z).all()
    np.testing.assert_array_equal(z, standard_normal(np.random.default_rng(7), shape))
    assert not np.array_equal(z, standard_normal(np.random.default_rng(8), shape))
    big = standard_normal(np.random.default_rng(1), (200_000,)).astype(np.float64)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(np.sort(big) / math.sqrt(2)))
    ks = np.max(np.abs(cdf - np.arange(1, big.size + 1) / big.size))
    assert ks < 1.63 / math.sqrt(big.size), ks  # the 1% critical value
    first, second = big[:100_000], big[100_000:]  # cos and sin of the same radii
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.01
    assert abs(np.corrcoef(first ** 2, second ** 2)[0, 1]) < 0.01
    recipe = zoo.build("mlp", seed=0)[2]
    np.testing.assert_array_equal(sample_latent(np.random.default_rng(3), 4, recipe),
                                  standard_normal(np.random.default_rng(3), (4, recipe.z_dim)))


def test_recipe_overrides_are_typed_and_checked():
    _, _, r = zoo.dcgan(seed=0)
    r.override(batch_size="64", label_smoothing="0.1", d_optimizer={"lr": 1e-3}, iterations=None)
    assert r.batch_size == 64 and r.d_batch == 32 and r.label_smoothing == 0.1
    assert r.d_optimizer == {"name": "Adam", "lr": 1e-3, "beta_1": 0.5}
    assert r.iterations == 23400
    with pytest.raises(ValueError, match="d_mode must be one of separate, sum, concat, got 'both'"):
        r.override(d_mode="both")
    with pytest.raises(zoo.RecipeError, match="recipe has no field 'lr'"):
        r.override(lr=1)
    assert zoo.Recipe.from_dict(r.to_dict()) == r


def test_optimizer_overrides_merge_or_restart_and_are_checked():
    _, _, r = zoo.dcgan_upsample(seed=0)
    r.override(d_optimizer={"momentum": 0.5})
    assert r.d_optimizer == {"name": "SGD", "lr": 1e-3, "momentum": 0.5, "nesterov": True}
    r.override(g_optimizer={"name": "Adam", "beta_1": 0.5})  # another optimizer: its own defaults
    assert r.g_optimizer == {"name": "Adam", "beta_1": 0.5}
    assert type(r.make_optimizer("g")).__name__ == "Adam" and r.make_optimizer("g").lr == 1e-3
    with pytest.raises(ValueError, match="g_optimizer: Adam takes lr, beta_1, beta_2, epsilon, clipvalue; not momentum"):
        r.override(g_optimizer={"momentum": 0.9})
    with pytest.raises(ValueError, match="d_optimizer: name must be one of Adam, SGD, RMSprop, got 'Adagrad'"):
        r.override(d_optimizer={"name": "Adagrad"})
    with pytest.raises(ValueError, match=r"d_optimizer: SGD: momentum must be in \[0, 1\), got 1.5"):
        r.override(d_optimizer={"momentum": 1.5})
    with pytest.raises(ValueError, match=r"g_optimizer: Adam: beta_2 must be in \[0, 1\), got 1"):
        r.override(g_optimizer={"beta_2": 1})
    with pytest.raises(ValueError, match="d_optimizer takes settings like .*, got 'SGD'"):
        r.override(d_optimizer="SGD")
    with pytest.raises(ValueError, match="fake_training_mode takes true or false, got 'maybe'"):
        r.override(fake_training_mode="maybe")
    r.override(fake_training_mode="false", d_half_batch="true")
    assert r.fake_training_mode is False and r.d_half_batch is True
    assert r.g_optimizer == {"name": "Adam", "beta_1": 0.5}  # the failed overrides changed nothing


def test_every_recipe_field_but_the_model_can_be_set_from_the_command_line(tmp_path, capsys):
    import json

    from scratchgan.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", "dcgan_bn", "--iterations", "1", "--batch-size", "4", "--sample-interval", "1",
                 "--seed", "1", "--out", str(out), "--no-progress", "--real-label", "0.9", "--fake-label", "0.1",
                 "--d-half-batch", "--fake-training-mode", "--data-range", "0", "1", "--optimizer", "SGD",
                 "--momentum", "0.8", "--nesterov", "--g-optimizer", "RMSprop", "--g-lr", "5e-4",
                 "--set", "g_optimizer.rho=0.95", "--set", "d_optimizer.clipvalue=2",
                 "--set", "data_order=sequential"]) == 2
    assert "g_optimizer: RMSprop takes lr, rho, epsilon, clipvalue, decay; not momentum" in capsys.readouterr().err
    assert not (out / "checkpoint.npz").exists()
    assert main(["train", "--model", "dcgan_bn", "--iterations", "1", "--batch-size", "4", "--sample-interval", "1",
                 "--seed", "1", "--out", str(out), "--no-progress", "--real-label", "0.9", "--fake-label", "0.1",
                 "--d-half-batch", "--fake-training-mode", "--data-range", "0", "1", "--d-optimizer", "SGD",
                 "--g-optimizer", "RMSprop", "--g-lr", "5e-4", "--set", "d_optimizer.momentum=0.8",
                 "--set", "d_optimizer.nesterov=true", "--set", "g_optimizer.rho=0.95",
                 "--set", "d_optimizer.clipvalue=2", "--set", "data_order=sequential"]) == 0
    recipe = json.loads((out / "config.json").read_text())["recipe"]
    assert (recipe["real_label"], recipe["fake_label"], recipe["d_half_batch"], recipe["fake_training_mode"]) == (
        0.9, 0.1, True, True)
    assert recipe["data_range"] == [0.0, 1.0] and recipe["data_order"] == "sequential"
    assert recipe["d_optimizer"] == {"name": "SGD", "momentum": 0.8, "nesterov": True, "clipvalue": 2}
    assert recipe["g_optimizer"] == {"name": "RMSprop", "lr": 5e-4, "rho": 0.95}
    assert main(["train", "--resume", str(out), "--iterations", "2", "--no-progress", "--beta1", "0.5"]) == 2
    assert "d_optimizer: SGD takes lr, momentum, nesterov, clipvalue; not beta_1" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--iterations", "2", "--no-progress", "--optimizer", "Adam"]) == 2
    err = capsys.readouterr().err  # the checkpoint's moments belong to other optimizers
    assert "is not a slot of Adam (m, v)" in err and "state resumes only into the optimizer" in err
    for bad, why in ((["--set", "image_shape=[32,32,3]"], "image_shape is the model itself"),
                     (["--set", "lr"], "expected FIELD=VALUE"),
                     (["--set", "colour=red"], "recipe has no field 'colour'")):
        assert main(["train", "--resume", str(out), "--iterations", "2", "--no-progress", *bad]) == 2
        assert why in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--iterations", "2", "--no-progress", "--momentum", "0.5"]) == 2
    assert "g_optimizer: RMSprop takes" in capsys.readouterr().err  # --momentum is for both optimizers
    assert main(["train", "--resume", str(out), "--iterations", "2", "--no-progress",
                 "--set", "d_optimizer.momentum=0.5"]) == 0
    assert json.loads((out / "config.json").read_text())["recipe"]["d_optimizer"]["momentum"] == 0.5


def test_unknown_model_names_the_choices():
    with pytest.raises(zoo.RecipeError, match="unknown model 'gan': available models are mlp, dcgan_bn"):
        zoo.build("gan")


def test_cli_overrides_reach_the_recipe_and_survive_resume(tmp_path, capsys):
    import json

    from scratchgan.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", "dcgan", "--iterations", "1", "--batch-size", "4", "--g-lr", "1e-3",
                 "--label-smoothing", "0.1", "--z-dim", "20", "--sample-interval", "1", "--seed", "2",
                 "--out", str(out)]) == 0
    recipe = json.loads((out / "config.json").read_text())["recipe"]
    assert recipe["batch_size"] == 4 and recipe["z_dim"] == 20 and recipe["label_smoothing"] == 0.1
    assert recipe["g_optimizer"]["lr"] == 1e-3 and recipe["d_optimizer"]["lr"] == 2e-4
    assert main(["train", "--resume", str(out), "--iterations", "2"]) == 0
    assert main(["train", "--resume", str(out), "--iterations", "3", "--z-dim", "10"]) == 2
    assert "a resumed run keeps its latent size 20" in capsys.readouterr().err
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dcgan_upsample     6,763,777  13,315,841" in out
    assert "dcgan           Jason Brownlee's MNIST DCGAN" in out and "docs/tutorials.md" in out
