"""Metrics benchmarks: UNEM's scores against scikit-image's on the same label volumes.

- `rand_scores` vs `skimage.metrics.adapted_rand_error`, and `variation_of_information` vs
  `skimage.metrics.variation_of_information(ignore_labels=[0])`, on a 250³ pair (64³ with
  `--quick`) of ~1000 Voronoi cells each, ground truth 0 on the faces between its cells;
  the calls interleaved, several rounds. Target: faster (ratio < 1). The results are
  checked to agree, so both sides do the same work.
- `evaluate_arrays` (block-wise: Rand, VI, both per slice, and the 10 worst split and
  merge offenders with their locations) vs the two scikit-image calls together.
- Peak RSS of `evaluate_arrays` over a zarr pair 4× deeper than another, each in a fresh
  process: flat if blocks keep memory bounded (target ratio ≤ 1.2); the contingency table
  itself grows with the objects, 4× here.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.results import Result, Target
from tests.unit.test_metrics import random_labels

Log = Callable[[str], None]
ROOT = Path(__file__).resolve().parents[2]
FASTER = Target("ratio", False, 1.0)
FLAT = Target("ratio", False, 1.2)


def cell_pair(edge: int, cells: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation and ground truth: Voronoi cells (made at half resolution, then doubled);
    the ground truth has 0 on the faces between its cells, as membranes."""
    rng = np.random.default_rng(seed)

    def cells_at(size: int) -> np.ndarray:
        half = random_labels(rng, (size // 2,) * 3, cells)
        return np.repeat(np.repeat(np.repeat(half, 2, 0), 2, 1), 2, 2).astype(np.uint32)

    gt, seg = cells_at(edge), cells_at(edge)
    membrane = np.zeros(gt.shape, bool)
    for axis in range(3):
        edge_mask = np.diff(gt, axis=axis) != 0
        membrane[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))] |= edge_mask
    gt[membrane] = 0
    return seg, gt


def interleaved(functions: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call, the functions run in turn, `rounds` times."""
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def check_agreement(seg: np.ndarray, gt: np.ndarray) -> None:
    """UNEM and scikit-image compute the same numbers (so the timings compare like work)."""
    from skimage.metrics import adapted_rand_error, variation_of_information

    from unem.evaluation import evaluate_arrays
    from unem.metrics import rand_scores
    from unem.metrics import variation_of_information as vi

    error = adapted_rand_error(gt, seg)[0]
    assert abs(rand_scores(seg, gt).adapted_rand_error - error) < 1e-3 * max(error, 1e-9)
    split, merge = variation_of_information(gt, seg, ignore_labels=[0])
    ours = vi(seg, gt)
    assert abs(ours.split - split) < 1e-9 and abs(ours.merge - merge) < 1e-9
    assert abs(evaluate_arrays(seg, gt).scores["vi_split"] - split) < 1e-9


def speed_results(edge: int, rounds: int, log: Log) -> list[Result]:
    from skimage.metrics import adapted_rand_error, variation_of_information

    from unem.evaluation import evaluate_arrays
    from unem.metrics import rand_scores
    from unem.metrics import variation_of_information as vi

    cells = max(20, round(1000 * (edge / 250) ** 3))
    log(f"  {edge}³ pair, {cells} cells each")
    seg, gt = cell_pair(edge, cells)
    check_agreement(seg, gt)
    seconds = interleaved(
        {
            "rand": lambda: rand_scores(seg, gt),
            "sk_rand": lambda: adapted_rand_error(gt, seg),
            "vi": lambda: vi(seg, gt),
            "sk_vi": lambda: variation_of_information(gt, seg, ignore_labels=[0]),
            "evaluate": lambda: evaluate_arrays(seg, gt),
        },
        rounds,
    )
    both = [a + b for a, b in zip(seconds["sk_rand"], seconds["sk_vi"], strict=True)]
    note = f"{edge}³ uint32, {cells} cells each, {rounds} interleaved rounds"
    evaluate_note = (
        "block-wise, 8 M-voxel blocks: Rand, VI, both per slice, 10 worst split and merge "
        "offenders located; baseline: the two scikit-image calls"
    )
    rows = [
        (f"rand_scores {edge}³ vs skimage adapted_rand_error", "rand", seconds["sk_rand"], note),
        (f"variation_of_information {edge}³ vs skimage", "vi", seconds["sk_vi"], note),
        (f"evaluate_arrays {edge}³ (+ per slice, offenders) vs skimage ARAND + VI", "evaluate",
         both, evaluate_note),
    ]  # fmt: skip
    return [
        Result(name, "s", seconds[key], baseline, FASTER, text)
        for name, key, baseline, text in rows
    ]


# --- memory -----------------------------------------------------------------------------------

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec, so a child
# started by a big parent would report the parent's size.
RSS_CHILD = """
import json, re, sys
from pathlib import Path
import zarr
from unem.evaluation import evaluate_arrays
seg, gt = (zarr.open_array(sys.argv[i], mode="r") for i in (1, 2))
result = evaluate_arrays(seg, gt, block_voxels=int(sys.argv[3]))
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())
print(json.dumps({"peak_kib": int(peak.group(1)), "rand_f": result.scores["rand_f"]}))
"""


def cells_2d(rng: np.random.Generator, edge: int, n: int) -> np.ndarray:
    """Voronoi cells 1..n of an edge² slice (no speckle: a realistic number of overlaps)."""
    from scipy import ndimage as ndi

    seeds = np.ones((edge, edge), bool)
    points = tuple(rng.integers(0, edge, n) for _ in range(2))
    seeds[points] = False
    ids = np.zeros((edge, edge), np.uint32)
    ids[points] = np.arange(1, n + 1, dtype=np.uint32)
    _, nearest = ndi.distance_transform_edt(seeds, return_indices=True)
    cells: np.ndarray = ids[tuple(nearest)]
    return cells


def zarr_pair(folder: Path, depth: int, edge: int) -> tuple[Path, Path]:
    """A segmentation and a ground truth of `depth` slices of edge², uint32, in zarr
    (chunks of one slice, as layers are stored), written slice by slice."""
    import zarr

    rng = np.random.default_rng(depth)
    base_gt, base_seg = cells_2d(rng, edge, 400), cells_2d(rng, edge, 500)
    paths = folder / f"seg-{depth}.zarr", folder / f"gt-{depth}.zarr"
    arrays = [zarr.open_array(str(p), mode="w", shape=(depth, edge, edge),
                              chunks=(1, min(edge, 512), min(edge, 512)), dtype="uint32")
              for p in paths]  # fmt: skip
    for z in range(depth):  # objects run through 32 slices; the segmentation drifts
        arrays[0][z] = np.roll(base_seg, z % 32, axis=1) + 1000 * (z // 32)
        arrays[1][z] = base_gt + 1000 * (z // 32)
    return paths


# glibc's adaptive mmap threshold lets the heap grow by some 40 MB over the first ~150
# reads of 2 M-voxel blocks, then plateau; bare zarr reads of the same blocks do the same.
# A fixed threshold shows what the evaluation itself keeps.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def child_rss(paths: tuple[Path, Path], block_voxels: int) -> float:
    """Peak RSS (MB) of a fresh process evaluating the pair at `paths`."""
    done = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(paths[0]), str(paths[1]), str(block_voxels)],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, **ALLOCATOR},
    )  # fmt: skip
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_kib"]) / 1024


def memory_result(scratch: Path, quick: bool, log: Log) -> Result:
    edge, small, large = (128, 16, 64) if quick else (512, 64, 256)
    block = 8 * edge * edge  # 8 slices a block: the small pair is already several blocks
    folder = scratch / "metrics-rss"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = {n: zarr_pair(folder, n, edge) for n in (small, large)}
    found: dict[int, list[float]] = {small: [], large: []}
    for repeat in range(3):
        for n in (small, large) if repeat % 2 == 0 else (large, small):
            found[n].append(child_rss(pairs[n], block))
            log(f"    {n} slices: {found[n][-1]:.0f} MB")
    raw = (large - small) * edge * edge * 8 / 2**20
    grown = statistics.median(found[large]) - statistics.median(found[small])
    return Result(
        f"evaluate_arrays peak RSS, {large} vs {small} slices", "MB", found[large], found[small],
        FLAT, note=f"{edge}² uint32 zarr pairs, blocks of 8 slices, a fresh process each "
        "(glibc mmap threshold fixed at 128 KiB); the large pair adds "
        f"{grown:+.0f} MB of peak RSS for {raw:.0f} MB more of labels",
    )  # fmt: skip


def run_metrics_benchmarks(scratch: Path, quick: bool, log: Log) -> list[Result]:
    results = speed_results(64 if quick else 250, 3, log)
    log("  evaluate_arrays peak RSS, small and large zarr pairs")
    return [*results, memory_result(scratch, quick, log)]
