"""`python -m tests.bench --quick --only ffn` runs end to end and prints both FFN rows.

Targets are not asserted here (a shared CI machine is too noisy for that, and the quick
sizes — 40 steps of the tiny preset, a barely trained model — are far from real ones);
the rows, their finite samples and the clean-up are.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ROWS = ["FFN training steps/s, cpu_tiny", "FFN inference voxels/s, cpu_tiny"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_ffn_benchmarks_print_their_rows(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "ffn"]
    done = subprocess.run(
        [*command, "--json", str(report), "--scratch", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(report.read_text())["results"]
    assert [r["name"] for r in results] == ROWS
    for result in results:
        values = [*result["samples"], *result["baseline_samples"], result["ratio"]]
        assert all(math.isfinite(v) and v > 0 for v in values), result
        assert f"| {result['name']} " in done.stdout
    assert "forward passes" in done.stdout and "bare" in done.stdout  # the notes
    assert list(tmp_path.iterdir()) == [report]  # the workspace, jobs and models are removed
