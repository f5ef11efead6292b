"""Import benchmarks: UNEM's import against a bare tifffile → zarr copy, and its peak memory.

Each import runs in a fresh interpreter (`python -m tests.bench.imports KIND TIFF OUT`), so
runs do not share caches or heap. The child prints the seconds its copy took (interpreter
start-up excluded) and its peak RSS, read from its own `VmHWM`: Linux carries the parent's
peak into a child's `ru_maxrss` across fork and exec, so `getrusage(RUSAGE_CHILDREN)` or
`os.wait4` would report the benchmark runner's own peak (it generated the stacks) instead.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.results import Result, Target
from tests.bench.stacks import SLICE_EDGE

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
CHUNKS = (1, 512, 512)  # unem.volumes.store.chunks_for of a 1024 × 1024 slice
# FIB-SEM-like, isotropic: the pyramid halves z too, its costliest path.
VOXEL_SIZE = (8.0, 8.0, 8.0)


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss: int  # bytes


def import_with_unem(tiff: Path, out: Path) -> None:
    from unem.volumes.datasets import import_dataset
    from unem.volumes.sources import open_source
    from unem.workspace import Workspace

    ws = Workspace(out / "workspace")
    import_dataset(ws, "bench", {"image": open_source(tiff)}, VOXEL_SIZE)


def copy_bare(tiff: Path, out: Path) -> None:
    """The least an import must do: read each page once and write it to one zarr v3 array."""
    import tifffile
    import zarr

    with tifffile.TiffFile(tiff) as tif:
        pages = tif.pages
        first = pages.first
        array = zarr.create_array(
            store=str(out / "bare.zarr"),
            shape=(len(pages), *first.shape),
            chunks=CHUNKS,
            dtype=first.dtype,
        )
        for z, page in enumerate(pages):
            array[z] = page.asarray()


def idle(tiff: Path, out: Path) -> None:
    """Import the same modules and do nothing: the floor of a child's RSS."""
    import tifffile  # noqa: F401
    import zarr  # noqa: F401

    import unem.volumes.datasets  # noqa: F401


KINDS: dict[str, Callable[[Path, Path], None]] = {
    "unem": import_with_unem,
    "bare": copy_bare,
    "idle": idle,
}


def run_child(kind: str, tiff: Path, scratch: Path) -> Run:
    """Run one copy in a fresh interpreter; its output is removed afterwards."""
    out = scratch / f"out-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [sys.executable, "-m", "tests.bench.imports", kind, str(tiff), str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    printed = process.stdout.read()
    process.wait()
    shutil.rmtree(out, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    report = json.loads(printed.splitlines()[-1])
    return Run(report["seconds"], report["peak_rss"])


def peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux: VmHWM of /proc/self/status)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource  # elsewhere: includes the parent's peak (see the module docstring)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_import_benchmarks(
    scratch: Path, small: int, large: int, repeats: int, log: Callable[[str], None]
) -> list[Result]:
    """(a) throughput vs the bare copy at `large` slices; (b) peak RSS at `small` vs `large`."""
    from tests.bench.stacks import write_stack  # scipy: not imported by the measured children

    log(f"writing synthetic stacks of {small} and {large} slices of {SLICE_EDGE}²")
    small_tiff = write_stack(scratch / "small.tif", small)
    large_tiff = write_stack(scratch / "large.tif", large)
    plan = {  # run name: (what runs, on which stack)
        "bare": ("bare", large_tiff),
        "unem": ("unem", large_tiff),
        "unem-small": ("unem", small_tiff),
        "idle": ("idle", small_tiff),
    }
    runs: dict[str, list[Run]] = {name: [] for name in plan}
    for repeat in range(repeats):
        names = list(plan) if repeat % 2 == 0 else list(plan)[::-1]  # alternate who goes first
        for name in names:
            run = run_child(*plan[name], scratch)
            runs[name].append(run)
            log(
                f"  {name:10} run {repeat + 1}: {run.seconds:6.1f} s, "
                f"peak RSS {run.peak_rss / MIB:6.0f} MiB"
            )
    mib_large, mib_small = large * SLICE_EDGE**2 / MIB, small * SLICE_EDGE**2 / MIB
    floor = statistics.median([r.peak_rss for r in runs["idle"]]) / MIB
    return [
        Result(
            f"import throughput, {mib_large:.0f} MiB TIFF",
            "MiB/s",
            [mib_large / r.seconds for r in runs["unem"]],
            [mib_large / r.seconds for r in runs["bare"]],
            Target("ratio", True, 0.7),
            note="baseline: tifffile page by page + zarr v3 write, chunks (1, 512, 512), "
            "no pyramid",
        ),
        Result(
            f"import peak RSS, {mib_large:.0f} vs {mib_small:.0f} MiB",
            "MiB",
            [r.peak_rss / MIB for r in runs["unem"]],
            [r.peak_rss / MIB for r in runs["unem-small"]],
            Target("ratio", False, 1.25),
            note=f"a fresh interpreter with the same modules imported peaks at {floor:.0f} MiB; "
            f"the bare copy of the large stack at "
            f"{statistics.median([r.peak_rss for r in runs['bare']]) / MIB:.0f} MiB",
        ),
    ]


def main(argv: list[str]) -> int:
    kind, tiff, out = argv
    start = time.perf_counter()
    KINDS[kind](Path(tiff), Path(out))
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss": peak_rss()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
