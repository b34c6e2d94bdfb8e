"""The pages of docs/ stay true: their code blocks run, and the code they point at exists.

Each ```python block of a page runs, in order, in one namespace per page (like a notebook),
so a derivation's snippet that gradient-checks a layer is a test. Every reference of the
form `path/to/file.py::name` must name a function or class defined in that file.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
REFERENCE = re.compile(r"`([\w/]+\.py)::(\w+)`")


def test_the_docs_exist():
    assert {p.name for p in PAGES} >= {"derivations.md", "tutorials.md"}


@pytest.mark.parametrize("page", [p for p in PAGES if BLOCK.search(p.read_text())], ids=lambda p: p.name)
def test_code_blocks_run(page):
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(BLOCK.findall(page.read_text()), 1):
        code = compile(block, f"{page.name}, code block {number}", "exec")
        exec(code, namespace)  # noqa: S102 - the repository's own documentation


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
