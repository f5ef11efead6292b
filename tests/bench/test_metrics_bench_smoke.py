"""`python -m tests.bench --quick --only metrics` runs end to end and prints every row.

Targets are not asserted here (a shared CI machine is too noisy for that, and 64³ is far
from the 250³ the targets are about); the rows, their finite samples, the agreement check
with scikit-image (the group fails without it) and the clean-up are.
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
    "rand_scores 64³ vs skimage adapted_rand_error",
    "variation_of_information 64³ vs skimage",
    "evaluate_arrays 64³ (+ per slice, offenders) vs skimage ARAND + VI",
    "evaluate_arrays peak RSS, 64 vs 16 slices",
]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_metrics_benchmarks_print_their_rows(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "metrics"]
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
        assert len(result["samples"]) == len(result["baseline_samples"]) == 3, result
        assert f"| {result['name']} " in done.stdout
    assert "| benchmark" in done.stdout and ("pass" in done.stdout or "FAIL" in done.stdout)
    assert list(tmp_path.iterdir()) == [report]  # the zarr pairs are removed
