"""The pages of docs/ stay true: their code blocks run, and the code they point at exists.

Each ```python block of a page runs, in order, in one namespace per page (like a notebook),
so a derivation's snippet that gradient-checks a layer is a test. Every reference of the
form `path/to/file.py::name` must name a function or class defined in that file.
"""
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
REFERENCE = re.compile(r"`([\w/]+\.py)::(\w+)`")


def test_the_docs_exist():
    assert {p.name for p in PAGES} >= {"derivations.md", "tutorials.md"}


#: a ```python block and, when the page shows what it prints, the ```output block after it
BLOCK_AND_OUTPUT = re.compile(r"^```python\n(.*?)^```\n(?:\n```output\n(.*?)^```\n)?", re.S | re.M)


@pytest.mark.parametrize("page", [p for p in PAGES if BLOCK.search(p.read_text())], ids=lambda p: p.name)
def test_code_blocks_run(page):
    """Every block runs; a block followed by an ```output block prints exactly that."""
    import contextlib
    import io

    namespace = {"__name__": f"docs_{page.stem}"}
    for number, (block, shown) in enumerate(BLOCK_AND_OUTPUT.findall(page.read_text()), 1):
        code = compile(block, f"{page.name}, code block {number}", "exec")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code, namespace)  # noqa: S102 - the repository's own documentation
        if shown:
            assert printed.getvalue() == shown, f"{page.name}, code block {number} prints:\n{printed.getvalue()}"


def test_the_traced_page_shows_what_its_code_prints():
    text = (ROOT / "docs" / "traced.md").read_text()
    shown = [out for _, out in BLOCK_AND_OUTPUT.findall(text) if out]
    assert len(shown) >= 6 and "1111." in text  # the printouts are there, and checked above
    assert 'set_backend("numpy")' in text.split("```output")[0]


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_code_references_point_at_definitions(page):
    missing = []
    for path, name in REFERENCE.findall(page.read_text()):
        source = ROOT / path
        if not source.is_file() or not re.search(rf"^\s*(def|class) {name}\b", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_every_layer_and_op_family_has_a_derivation():
    text = (ROOT / "docs" / "derivations.md").read_text()
    ops_referenced = {name for path, name in REFERENCE.findall(text) if path.startswith("scratchgan/ops/")}
    from scratchgan import ops

    assert sorted(set(ops.OPS) - ops_referenced) == []
    for heading in ("Dense", "Activations", "Conv2D", "Conv2DTranspose", "BatchNormalization",
                    "MaxPooling2D and UpSampling2D", "Dropout", "Binary cross-entropy", "Optimizers"):
        assert re.search(rf"^## {re.escape(heading)}", text, re.M), heading


def test_readme_starts_with_the_commands_ci_runs():
    """The README's first block: the install-and-train command, then the install-and-test
    command, which is exactly what CI runs."""
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    train, test = (line.split("  #")[0].strip() for line in first_block[:2])
    assert train.startswith("python3 -m pip install") and train.endswith("python3 -m scratchgan train")
    assert test in (ROOT / ".ci" / "run").read_text()


def test_readme_counts_the_gradient_checks():
    from scratchgan.gradcheck_suite import CASES, LOSS_CASES

    readme = (ROOT / "README.md").read_text()
    assert f"the table of all {len(CASES) + len(LOSS_CASES)} checks" in readme


def test_the_tutorials_page_gives_the_zoos_parameter_counts():
    from scratchgan import zoo

    text = (ROOT / "docs" / "tutorials.md").read_text()
    sections = {m.group(1): m.group(2) for m in re.finditer(r"^## `(\w+)`(.*?)(?=^## |\Z)", text, re.S | re.M)}
    assert sorted(sections) == sorted(zoo.MODELS)
    for name, section in sections.items():
        g, d, _ = zoo.build(name)
        assert f"{g.count_params():,} parameters" in section and f"{d.count_params():,} parameters" in section, name


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = [target for target in LINK.findall(page.read_text())
              if not target.startswith(("http://", "https://", "mailto:")) and not (page.parent / target).exists()]
    assert broken == []


def _figures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw_figures", ROOT / "examples" / "draw_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pictures_show_what_the_ops_compute():
    figures = _figures()
    interior = {k: sorted(set(figures.overlap_counts(k)[2:-2, 2:-2].ravel().tolist())) for k in (3, 4, 5)}
    assert interior == {3: [1, 2, 4], 4: [4], 5: [4, 6, 9]}  # the captions' claims
    cols, _ = figures.im2col_sources()
    assert cols.tolist() == [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]  # e (4) in all four rows
    x, y, dy, dx = figures.maxpool_example()
    assert dx.sum() == pytest.approx(dy.sum()) and np.count_nonzero(dx) == 4
    assert all(x[dx == g][0] == m for g, m in zip(dy.ravel(), y.ravel()))  # each dy sits on its window's max
    v = figures.circuit_example()

    def loss(inputs):  # the circuit by hand: BCE from logits against 1 of LeakyReLU(x W + b)
        z = inputs @ v["W"] + v["b"]
        a = z if z > 0 else 0.2 * z
        return np.log1p(np.exp(-a))

    h = 1e-6
    numeric = [(loss(v["x"] + h * e) - loss(v["x"] - h * e)) / (2 * h) for e in np.eye(2)]
    assert np.allclose(v["dx"], numeric) and v["loss"] == pytest.approx(loss(v["x"]))
    pattern = figures.untrained_generator_pattern(samples=32)
    rows = pattern[4:24].mean(axis=1)
    assert rows[::4].mean() > rows[1::4].mean()  # the period-4 grid the page shows


def test_every_picture_is_drawn_by_the_script_referenced_and_up_to_date(tmp_path):
    from PIL import Image

    figures = _figures()
    assert figures.main(["--out", str(tmp_path)]) == 0
    text = "\n".join(p.read_text() for p in [*PAGES, ROOT / "README.md"])
    for name in figures.FIGURES:
        committed = ROOT / "docs" / "images" / name
        assert committed.is_file() and f"images/{name}" in text, name
        with Image.open(committed) as old, Image.open(tmp_path / name) as new:
            a, b = np.asarray(old.convert("RGB"), np.int16), np.asarray(new.convert("RGB"), np.int16)
        assert a.shape == b.shape and np.abs(a - b).max() <= 2, f"{name}: run examples/draw_figures.py again"
    for picture in (ROOT / "docs" / "images").glob("*.png"):
        assert f"images/{picture.name}" in text, f"docs/images/{picture.name} is referenced nowhere"


def test_the_notebook_runs_cell_by_cell_and_its_pictures_exist():
    """docs/backprop.ipynb, executed as a kernel would: every code cell in order, in one
    namespace; any error fails. Its exercise prints a failing check, then fixes it."""
    import contextlib
    import io
    import json

    notebook = json.loads((ROOT / "docs" / "backprop.ipynb").read_text())
    assert notebook["nbformat"] == 4
    namespace, printed = {"__name__": "docs_backprop"}, io.StringIO()
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert len(code_cells) >= 8 and all(c["outputs"] == [] for c in code_cells)  # stored clean
    for number, cell in enumerate(code_cells, 1):
        with contextlib.redirect_stdout(printed):
            exec(compile("".join(cell["source"]), f"backprop.ipynb, code cell {number}", "exec"), namespace)
    assert "its 5 worst comparisons" in printed.getvalue()  # the exercise's broken backward is explained
    assert namespace["report"].max_error < 1e-7  # and the fixed one passes
    markdown = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    pictures = re.findall(r"\]\((images/[\w.]+)\)", markdown)
    assert len(pictures) >= 5 and all((ROOT / "docs" / p).is_file() for p in pictures)


def test_the_readmes_early_samples_strip_is_drawn_by_the_script(tmp_path):
    from PIL import Image

    figures = _figures()
    (tmp_path / "samples").mkdir()
    for it, shade in ((250, 40), (3000, 200)):
        Image.fromarray(np.full((20, 30, 3), shade, np.uint8)).save(tmp_path / "samples" / f"iter_{it:06d}.png")
    assert figures.main(["--strip", str(tmp_path), "250", "3000", "--strip-out", str(tmp_path / "strip.png")]) == 0
    with Image.open(tmp_path / "strip.png") as strip:
        pixels = np.asarray(strip.convert("RGB"))
    assert pixels.shape == (20, 2 * 30 + 10, 3)
    assert (pixels[:, :30] == 40).all() and (pixels[:, 30:40] == 255).all() and (pixels[:, 40:] == 200).all()
    assert "draw_figures.py --strip" in (ROOT / "README.md").read_text()
