"""`python -m tests.bench --quick --only train2d` runs end to end and prints every trainer row.

Targets are not asserted here (a shared CI machine is too noisy for that, and the quick
sizes are far from real ones); the rows, their finite samples and the clean-up are.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ROWS = [
    "trainer steps/s, augmentation off",
    "trainer steps/s, augmentation default",
    "tiled inference, tile 128 batch 4, 1/8 overlap",
    "tiled inference, tile 128 batch 4, no overlap",
    "infer_layer peak RSS, 20 vs 4 slices",
]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_train2d_benchmarks_print_their_rows(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "train2d"]
    done = subprocess.run(
        [*command, "--json", str(report), "--scratch", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(report.read_text())["results"]
    assert [r["name"] for r in results] == ROWS
    for result in results:
        values = [*result["samples"], *result["baseline_samples"], result["ratio"]]
        assert all(math.isfinite(v) and v > 0 for v in values), result
        assert result["samples"] and result["baseline_samples"], result
        assert f"| {result['name']} " in done.stdout
    assert "| benchmark" in done.stdout and ("pass" in done.stdout or "FAIL" in done.stdout)
    assert list(tmp_path.iterdir()) == [report]  # the workspace, jobs and models are removed
