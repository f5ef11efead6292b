"""The benchmark command runs end to end (quick sizes); targets are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BENCHMARKS = [
    "import throughput",
    "import peak RSS",
    "start-up to /api/health",
    "server RSS when idle",
]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_benchmarks_print_a_table_and_write_json(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench",
            "--quick",
            "--only",
            "imports",
            "--only",
            "startup",
            "--json",
            str(report),
            "--scratch",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(report.read_text())["results"]
    assert [r["name"].split(",")[0] for r in results] == BENCHMARKS
    for result in results:
        assert result["value"] > 0 and result["baseline"] > 0, result
        assert len(result["samples"]) == len(result["baseline_samples"]) >= 3
        assert result["name"] in done.stdout
    assert "| benchmark" in done.stdout and ("pass" in done.stdout or "FAIL" in done.stdout)
    assert list(tmp_path.iterdir()) == [report]  # the stacks and imports are cleaned up
