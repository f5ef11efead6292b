"""Run the benchmarks: `python -m tests.bench [--quick] [--json PATH] [--check]`.

Every figure is a ratio to a baseline measured in the same run: each measurement and its
baseline run interleaved, several times, and the medians are compared, because this runs
on shared, noisy machines. `--quick` shrinks the stacks for a CI smoke run; the default
sizes take about three minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.imports import run_import_benchmarks
from tests.bench.results import table, write_json
from tests.bench.startup import run_startup_benchmarks


@dataclass(frozen=True)
class Sizes:
    small_slices: int  # of 1024 × 1024 bytes: 1 MiB each
    large_slices: int
    import_repeats: int
    startup_repeats: int


FULL = Sizes(small_slices=256, large_slices=1024, import_repeats=5, startup_repeats=7)
QUICK = Sizes(small_slices=16, large_slices=64, import_repeats=3, startup_repeats=3)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small stacks ({QUICK.small_slices} and {QUICK.large_slices} MiB) for a smoke run",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a benchmark misses its target"
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        metavar="DIR",
        help="where to write the stacks and imports (default: a temporary folder)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="unem-bench-", dir=args.scratch) as scratch:
        log("import benchmarks")
        results = run_import_benchmarks(
            Path(scratch), sizes.small_slices, sizes.large_slices, sizes.import_repeats, log
        )
        log("start-up benchmarks")
        results += run_startup_benchmarks(Path(scratch), sizes.startup_repeats, log)
    seconds = time.monotonic() - started
    print(table(results))
    kind = "quick" if args.quick else "full"
    print(f"\n{kind} run, {seconds:.0f} s; medians of interleaved runs")
    if args.json:
        write_json(args.json, results, args.quick, seconds)
    return 1 if args.check and not all(r.passed for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
