"""`python -m tests.bench --quick --only meshes` runs end to end and prints every mesh row.

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

ROWS = [
    "mesh all 36 segments (64×128×128), vs zmesh direct",
    "mesh all 36 segments (64×128×128), CPU time, vs zmesh direct",
    "mesh all 36 segments (64×128×128), vs skimage per label",
    "re-mesh after a merge, vs full re-mesh",
]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_mesh_benchmarks_print_their_rows(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "meshes"]
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
        assert result["value"] > 0 and result["baseline"] > 0, result
        assert len(result["samples"]) == len(result["baseline_samples"]) >= 3, result
        assert f"| {result['name']} " in done.stdout
    assert "speedup ×" in done.stdout
    assert list(tmp_path.iterdir()) == [report]  # the workspace is removed
