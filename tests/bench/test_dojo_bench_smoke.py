"""`python -m tests.bench --quick --only dojo` runs end to end and prints every Dojo row.

Targets are not asserted here (a shared CI machine is too noisy for that); the rows, their
samples and the clean-up are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TILE_ROWS = [
    f"tile {layer} {state} p{q}"
    for layer in ("image", "label")
    for state in ("cold", "warm 200", "warm 304")
    for q in (50, 99)
]
LIVE_ROWS = [
    "edit fan-out to 20 clients p50",
    "edit fan-out to 20 clients p99",
    "merge commit, 2 × ",
    "paint stroke 200 × r10 commit p50",
    "paint stroke 200 × r10 commit p99",
]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_dojo_benchmarks_print_their_rows(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "dojo"]
    done = subprocess.run(
        [*command, "--json", str(report), "--scratch", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(report.read_text())["results"]
    names = [r["name"] for r in results]
    assert len(names) == len(TILE_ROWS) + len(LIVE_ROWS), names  # no import/start-up rows
    for row in TILE_ROWS + LIVE_ROWS:
        assert any(name.startswith(row) for name in names), (row, names)
    for result in results:
        assert result["value"] > 0 and result["baseline"] > 0, result
        assert len(result["samples"]) >= 10 and len(result["baseline_samples"]) >= 10, result
        assert f"| {result['name']} " in done.stdout
    assert "| benchmark" in done.stdout and ("pass" in done.stdout or "FAIL" in done.stdout)
    assert list(tmp_path.iterdir()) == [report]  # the workspace and its datasets are removed
