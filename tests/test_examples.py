"""The example scripts run (a few iterations each) and write their grids."""
import subprocess
import sys
from pathlib import Path

import pytest

# pytorch_twin.py is not a training script but the module `scratchgan bench` loads for its
# PyTorch column (needs torch); tests/test_bench.py covers it
EXAMPLES = sorted(p for p in (Path(__file__).parent.parent / "examples").glob("*.py") if p.name != "pytorch_twin.py")


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(script), "--iterations", "3", "--sample-interval", "3", "--batch-size", "8", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "3 [D loss: " in result.stdout
    assert list(tmp_path.glob("*.png"))


def test_there_are_examples():
    assert EXAMPLES
