"""sample --nice (D picks the most real) and --interpolate (latent walks)."""
import numpy as np
import pytest
from PIL import Image

from scratchgan import zoo
from scratchgan.cli import main
from scratchgan.sampling import interpolate, nicest, realness, slerp


def test_nicest_keeps_what_d_rates_most_real(rng):
    g, d, recipe = zoo.mlp(seed=1)
    z = rng.standard_normal((40, 100)).astype(np.float32)
    best_z, scores = nicest(g, d, recipe, z, 5)
    all_scores = d.predict(g.predict(z))[:, 0]
    np.testing.assert_allclose(scores, np.sort(all_scores)[::-1][:5], rtol=1e-6)
    assert (np.diff(scores) <= 0).all()
    np.testing.assert_allclose(d.predict(g.predict(best_z))[:, 0], scores, rtol=1e-5)
    with pytest.raises(ValueError, match="best 50 of only 40"):
        nicest(g, d, recipe, z, 50)


def test_realness_follows_the_label_convention(rng):
    g, d, recipe = zoo.mlp(seed=1)
    images = g.predict(rng.standard_normal((6, 100)).astype(np.float32))
    p = d.predict(images)[:, 0]
    recipe.real_label, recipe.fake_label = 0.0, 1.0  # cifar_frog: D says 1 for fake
    np.testing.assert_allclose(realness(d, recipe, images), 1 - p, rtol=1e-6)


def test_slerp_walks_the_great_circle(rng):
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-12)
    mid = slerp(a, b, 0.5)
    # on the arc the norm stays between the ends' norms; a straight line sinks well below
    assert min(np.linalg.norm(a), np.linalg.norm(b)) * 0.99 < np.linalg.norm(mid)
    assert np.linalg.norm(0.5 * (a + b)) < 0.8 * np.linalg.norm(mid)


def test_interpolate_rows_start_and_end_at_the_points(rng):
    points = rng.standard_normal((4, 8)).astype(np.float32)
    walk = interpolate(points, 5)
    assert walk.shape == (15, 8) and walk.dtype == np.float32
    np.testing.assert_allclose(walk[0], points[0], atol=1e-6)
    np.testing.assert_allclose(walk[4], points[1], atol=1e-6)
    np.testing.assert_allclose(walk[14], points[3], atol=1e-6)
    np.testing.assert_allclose(interpolate(points, 3, spherical=False)[1], points[:2].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 latent points and 2 steps"):
        interpolate(points[:1], 5)


def test_cli_sample_nice_and_interpolate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--iterations", "2", "--batch-size", "8", "--out", str(run), "--seed", "3"]) == 0
    assert main(["sample", str(run), "--nice", "--n", "6", "--out", str(tmp_path / "nice.npy")]) == 0
    assert "the 6 of 120 samples D rates most real" in capsys.readouterr().out
    assert np.load(tmp_path / "nice.npy").shape == (6, 28, 28, 1)
    assert main(["sample", str(run), "--interpolate", "7", "--n", "21", "--out", str(tmp_path / "walk.png")]) == 0
    out, err = capsys.readouterr()
    assert "one walk through 4 latent points, 3 rows of 7 steps" in out and err == ""
    with Image.open(tmp_path / "walk.png") as grid:
        assert grid.size[0] > grid.size[1] * 2  # 7 columns, 3 rows
    assert main(["sample", str(run), "--interpolate", "10", "--n", "64", "--out", str(tmp_path / "walk.npy")]) == 0
    assert "60 images, not --n 64 (give a multiple of 10)" in capsys.readouterr().err  # said, not quiet
    assert np.load(tmp_path / "walk.npy").shape == (60, 28, 28, 1)
    assert main(["sample", str(run), "--nice", "--interpolate", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "do not combine" in capsys.readouterr().err
