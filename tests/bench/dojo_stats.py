"""Percentiles for the Dojo benchmarks: latency targets are about the tail, not the median."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from tests.bench.results import Result


def percentile(samples: Sequence[float], quantile: int) -> float:
    """The `quantile`-th percentile (1..99), interpolated between the nearest samples."""
    if quantile == 50 or len(samples) < 2:
        return statistics.median(samples)
    return statistics.quantiles(samples, n=100, method="inclusive")[quantile - 1]


@dataclass
class PercentileResult(Result):
    """A Result whose value and baseline are the same percentile of their samples."""

    quantile: int = 50

    def __post_init__(self) -> None:
        self.value = percentile(self.samples, self.quantile)
        self.baseline = percentile(self.baseline_samples, self.quantile)
        self.ratio = self.value / self.baseline
        self.passed = self.target.check(self.value, self.ratio)
