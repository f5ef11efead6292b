"""`python -m tests.bench --quick --only filters` runs end to end and prints every filter row.

Targets are not asserted here (a shared machine is too noisy for that at 64³, where
writing the layer dominates); the rows, their finite samples and the clean-up are. About
10 s on an idle 2-core machine (minutes on a busy one: hence the generous timeout).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.filters import cases
from tests.conftest import ROOT


@pytest.mark.timeout(300)
def test_quick_filter_benchmarks_print_their_rows(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "filters"]
    done = subprocess.run(
        [*command, "--json", str(report), "--scratch", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(report.read_text())["results"]
    rows = [f"{case.name}, job path, 64³" for case in cases()]
    assert [r["name"] for r in results] == [*rows, "3D labelling in memory vs cc3d, 64³"]
    assert len(rows) >= 21 and any("label 3d (cc3d)" in row for row in rows)
    for result in results:
        values = [*result["samples"], *result["baseline_samples"], result["ratio"]]
        assert all(math.isfinite(v) and v > 0 for v in values), result
        assert f"| {result['name']} " in done.stdout
    assert list(tmp_path.iterdir()) == [report]  # the workspace and its layers are removed
