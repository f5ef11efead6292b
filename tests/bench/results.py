"""Benchmark results: a value against a baseline measured in the same run, and its target."""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """What passes: the ratio (value / baseline) or the value, at least or at most `limit`."""

    of: str  # "ratio" | "value"
    at_least: bool
    limit: float
    unit: str = ""

    def check(self, value: float, ratio: float | None) -> bool:
        measured = ratio if self.of == "ratio" else value
        if measured is None:
            return False
        return measured >= self.limit if self.at_least else measured <= self.limit

    def __str__(self) -> str:
        sign = "≥" if self.at_least else "≤"
        return f"{self.of} {sign} {self.limit:g}{' ' + self.unit if self.unit else ''}"


@dataclass
class Result:
    """The medians of interleaved samples of a measurement and of its baseline."""

    name: str
    unit: str
    samples: list[float]
    baseline_samples: list[float]
    target: Target
    note: str = ""
    value: float = field(init=False)
    baseline: float = field(init=False)
    ratio: float = field(init=False)
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.value = statistics.median(self.samples)
        self.baseline = statistics.median(self.baseline_samples)
        self.ratio = self.value / self.baseline
        self.passed = self.target.check(self.value, self.ratio)

    def row(self) -> list[str]:
        return [
            self.name,
            f"{self.value:.3g} {self.unit}",
            f"{self.baseline:.3g} {self.unit}",
            f"{self.ratio:.2f}",
            str(self.target),
            "pass" if self.passed else "FAIL",
        ]


HEADER = ["benchmark", "value", "baseline", "ratio", "target", "pass/fail"]


def table(results: list[Result]) -> str:
    """A Markdown table, readable in a terminal and pasteable into an issue."""
    rows = [HEADER, *(result.row() for result in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {r.name}: {r.note}" for r in results if r.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def write_json(path: Path, results: list[Result], quick: bool, seconds: float) -> None:
    report: dict[str, Any] = {
        "quick": quick,
        "seconds": round(seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": [{**asdict(r), "target": str(r.target)} for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
