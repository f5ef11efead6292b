"""Run the benchmarks: `python -m tests.bench [--quick] [--json PATH] [--check] [--only NAME]`.

Every figure is a ratio to a baseline measured in the same run: each measurement and its
baseline run interleaved, several times, and the medians (or, for latencies, the same
percentile) are compared, because this runs on shared, noisy machines. `--quick` shrinks
the stacks for a CI smoke run; `--only` runs one group (repeat it for several). On a
2-core machine the default sizes take about four minutes, the dojo group about 70 s of it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.imports import run_import_benchmarks
from tests.bench.results import Result, table, write_json
from tests.bench.startup import run_startup_benchmarks

GROUPS = ("imports", "startup", "dojo", "jobs", "train2d", "metrics", "meshes", "filters", "ffn")


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
        help=f"small stacks ({QUICK.small_slices} and {QUICK.large_slices} MiB), datasets and "
        "sample counts for a smoke run",
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
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        metavar="NAME",
        help=f"run only this group of benchmarks ({', '.join(GROUPS)}); repeat for several",
    )
    return parser.parse_args(argv)


def run_group(group: str, scratch: Path, args: argparse.Namespace) -> list[Result]:
    sizes = QUICK if args.quick else FULL
    log({"imports": "import", "startup": "start-up"}.get(group, group) + " benchmarks")
    if group == "imports":
        return run_import_benchmarks(
            scratch, sizes.small_slices, sizes.large_slices, sizes.import_repeats, log
        )
    if group == "startup":
        return run_startup_benchmarks(scratch, sizes.startup_repeats, log)
    if group == "jobs":
        from tests.bench.jobs import run_job_benchmarks

        return run_job_benchmarks(scratch, args.quick, log)
    if group == "train2d":
        from tests.bench.train2d import run_train2d_benchmarks  # imports Keras

        return run_train2d_benchmarks(scratch, args.quick, log)
    if group == "metrics":
        from tests.bench.metrics import run_metrics_benchmarks  # scikit-image as the baseline

        return run_metrics_benchmarks(scratch, args.quick, log)
    if group == "meshes":
        from tests.bench.meshes import run_mesh_benchmarks  # zmesh, scikit-image baselines

        return run_mesh_benchmarks(scratch, args.quick, log)
    if group == "filters":
        from tests.bench.filters import run_filter_benchmarks  # scipy, scikit-image, cc3d

        return run_filter_benchmarks(scratch, args.quick, log)
    if group == "ffn":
        from tests.bench.ffn import run_ffn_benchmarks  # imports Keras

        return run_ffn_benchmarks(scratch, args.quick, log)
    from tests.bench.dojo import run_dojo_benchmarks  # imports the core, zarr, socketio

    return run_dojo_benchmarks(scratch, args.quick, log)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    groups = [group for group in GROUPS if args.only is None or group in args.only]
    started = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="unem-bench-", dir=args.scratch) as scratch:
        for group in groups:
            results += run_group(group, Path(scratch), args)
    seconds = time.monotonic() - started
    print(table(results))
    kind = "quick" if args.quick else "full"
    print(f"\n{kind} run, {seconds:.0f} s; medians (or the named percentile) of interleaved runs")
    if args.json:
        write_json(args.json, results, args.quick, seconds)
    return 1 if args.check and not all(r.passed for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
