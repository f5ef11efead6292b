"""Filter benchmarks: each filter's job path on a 256³ volume (64³ with --quick) against the
bare library call, and 3D labelling against cc3d directly.

- job path: `run_pipeline_layer`, what the `filter-pipeline` job runs in its worker (worker
  start-up is the jobs group's row): read the layer from its Zarr store as the steps ask
  for it (slice by slice, in blocks or whole), filter, convert, and write the new layer
  with its pyramid. Baseline, the same work done plainly: read the whole layer into
  memory, one call of the library (scipy, scikit-image, cc3d, fastremap; 2D-only ones
  once per slice), convert with numpy, write the layer with the same `add_layer`.
  Filters of masks run after a threshold step (the baseline thresholds too); filters of
  labels read a segmentation layer (3D components, or per-slice components for linking).
- 3D labelling, in memory: the runner's stitched labelling (one slab at these sizes) of a
  mask against `cc3d.connected_components` on the same array.

Samples of each pair are interleaved (3 pairs; 7 when a sample takes under 4 s, where the
disk's noise weighs most); the ratio is of the medians (target ≤ 1.2).

To measure a few rows alone, name them in UNEM_BENCH_FILTERS (comma-separated parts of
their names, any case): `UNEM_BENCH_FILTERS=link,in memory python -m tests.bench --only
filters`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.results import Result, Target
from tests.bench.stacks import slices
from unem.filters.layer_runs import run_pipeline_layer
from unem.filters.pipeline import make_pipeline
from unem.filters.runner import run_array
from unem.volumes.datasets import import_dataset
from unem.volumes.layers import add_layer
from unem.volumes.sources import array_source
from unem.volumes.store import open_level
from unem.workspace import Workspace

Log = Callable[[str], None]
Bare = Callable[[np.ndarray], np.ndarray]
TARGET = Target("ratio", False, 1.2)
SHORT, SHORT_REPEATS = 4.0, 7  # samples under SHORT seconds: at least SHORT_REPEATS pairs
MASK_STEP = {"filter": "threshold", "options": {"threshold": 128 / 255}}
IN_MEMORY = "3D labelling in memory vs cc3d"


@dataclass(frozen=True)
class Case:
    name: str  # the row
    layer: str  # image, segmentation (3D labels) or groundtruth (2D labels)
    steps: list[dict[str, Any]]
    bare: Bare  # the library call on the layer's whole array (a mask: thresholded first)
    output: str  # the layer kind written


def per_slice(function: Bare) -> Bare:
    return lambda volume: np.stack([function(plane) for plane in volume])


def on_mask(function: Bare) -> Bare:
    return lambda volume: function(volume >= 128)


def ball(radius: int) -> np.ndarray:
    from skimage.morphology import ball as skimage_ball

    return np.asarray(skimage_ball(radius), bool)


def cases() -> list[Case]:
    import cc3d
    import fastremap
    from scipy import ndimage
    from skimage import exposure, feature, filters, morphology, segmentation, util

    from unem.filters.labelling import LinkOptions, link_overlap

    def to8(values: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)

    def watershed(mask: np.ndarray) -> np.ndarray:
        distance = ndimage.distance_transform_edt(mask)
        seeds = cc3d.connected_components(morphology.h_maxima(distance, 2).astype(np.uint8))
        return np.asarray(segmentation.watershed(-distance, seeds, mask=mask))

    def normalise(volume: np.ndarray) -> np.ndarray:
        low, high = np.percentile(volume, (0.5, 99.5))
        return to8((volume.astype(np.float32) - low) * (255 / (high - low)))

    def size_filter(labels: np.ndarray) -> np.ndarray:
        ids, counts = fastremap.unique(labels, return_counts=True)
        return fastremap.mask(labels, ids[counts < 100].tolist())

    def step(name: str, **options: Any) -> dict[str, Any]:
        return {"filter": name, "options": options}

    morph = {"radius": 1, "radius_z": 1}
    return [
        Case("gaussian 3d σ 2", "image", [step("gaussian", sigma=2, sigma_z=2)],
             lambda v: to8(ndimage.gaussian_filter(v.astype(np.float32), 2, truncate=4)), "image"),
        Case("median 3d 3³", "image", [step("median", size=3, size_z=3)],
             lambda v: ndimage.median_filter(v, 3), "image"),
        Case("CLAHE 2d", "image", [step("clahe", kernel_size=64)],
             per_slice(lambda p: to8(255 * exposure.equalize_adapthist(p / 255, kernel_size=64))),
             "image"),
        Case("invert", "image", [step("invert")], util.invert, "image"),
        Case("normalise 3d", "image", [step("normalise", dims="3d")], normalise, "image"),
        Case("unsharp mask 3d", "image", [step("unsharp-mask", radius=2, radius_z=2)],
             lambda v: to8(filters.unsharp_mask(v.astype(np.float32), 2, preserve_range=True)),
             "image"),
        Case("threshold", "image", [MASK_STEP], lambda v: v >= 128, "segmentation"),
        Case("Otsu 3d", "image", [step("otsu", dims="3d")],
             lambda v: v > filters.threshold_otsu(v), "segmentation"),
        Case("Canny 2d", "image", [step("canny", sigma=2)],
             per_slice(lambda p: feature.canny(p.astype(np.float32), 2, 0.7, 0.9,
                                               use_quantiles=True)), "segmentation"),
        *(
            Case(f"{name} 3d r 1", "image", [MASK_STEP, step(name, **morph)],
                 on_mask(lambda m, f=function: f(m, ball(1))), "segmentation")
            for name, function in (("erode", morphology.erosion), ("dilate", morphology.dilation),
                                   ("open", morphology.opening), ("close", morphology.closing))
        ),
        Case("fill holes 3d", "image", [MASK_STEP, step("fill-holes", dims="3d")],
             on_mask(ndimage.binary_fill_holes), "segmentation"),
        Case("remove small objects 3d", "image",
             [MASK_STEP, step("remove-small-objects", dims="3d", min_size=64)],
             on_mask(lambda m: morphology.remove_small_objects(m, max_size=63)), "segmentation"),
        Case("distance transform 3d", "image", [MASK_STEP, step("distance-transform", dims="3d")],
             on_mask(lambda m: np.rint(ndimage.distance_transform_edt(m)).astype(np.uint16)),
             "image"),
        Case("label 3d (cc3d)", "image", [MASK_STEP, step("label", dims="3d")],
             on_mask(lambda m: cc3d.connected_components(m, connectivity=6)), "segmentation"),
        Case("label 2d (cc3d)", "image", [MASK_STEP, step("label")],
             on_mask(per_slice(lambda m: cc3d.connected_components(m, connectivity=4))),
             "segmentation"),
        Case("watershed 3d", "image", [MASK_STEP, step("watershed", dims="3d")],
             on_mask(watershed), "segmentation"),
        Case("size filter 3d", "segmentation", [step("size-filter", dims="3d", min_size=100)],
             size_filter, "segmentation"),
        Case("sequential relabel", "segmentation", [step("relabel")],
             lambda v: fastremap.renumber(v)[0], "segmentation"),
        Case("link 2d labels into 3d", "groundtruth", [step("link-overlap")],
             lambda v: link_overlap(v, LinkOptions()), "segmentation"),
    ]  # fmt: skip


def layer_dtype(result: np.ndarray, kind: str) -> str:
    return "uint32" if kind == "segmentation" else str(result.dtype)


def bare_run(ws: Workspace, dataset: str, case: Case, output: str) -> None:
    """The baseline: read the layer whole, one library call, write the layer."""
    source = ws.dataset_dir(dataset) / f"{case.layer}.zarr"
    volume = np.asarray(open_level(source, "0")[:])
    result = case.bare(volume)
    dtype = layer_dtype(result, case.output)
    planes = (plane.astype(dtype, copy=False) for plane in result)
    add_layer(ws, dataset, output, case.output, dtype, planes, "bare")


def job_run(ws: Workspace, dataset: str, case: Case, output: str) -> None:
    pipeline = make_pipeline(case.steps)
    layer = run_pipeline_layer(ws, dataset, case.layer, pipeline, output)
    assert layer.kind == case.output, (case.name, layer.kind)


def drop_layer(ws: Workspace, dataset: str, name: str) -> None:
    """Remove a layer written by a sample (outside the timed part: deleting thousands of
    chunk files costs more than writing them on some file systems)."""
    ws.db["layers"].delete((dataset, name))
    shutil.rmtree(ws.dataset_dir(dataset) / f"{name}.zarr")


def sample(ws: Workspace, dataset: str, run: Callable[[Workspace, str, Case, str], None],
           case: Case) -> float:  # fmt: skip
    start = time.perf_counter()
    run(ws, dataset, case, "sample")
    seconds = time.perf_counter() - start
    drop_layer(ws, dataset, "sample")
    return seconds


def paired(
    job: Callable[[], float], bare: Callable[[], float], repeats: int, warm_up: bool
) -> tuple[list[float], list[float]]:
    """Interleaved samples (s) of `job` and `bare`, after a warm-up of each if asked; more
    pairs when a sample is short (writing the layer, noisy on a shared disk, dominates)."""
    if warm_up and max(job(), bare()) < SHORT:
        repeats = max(repeats, SHORT_REPEATS)
    jobs, bares = [], []
    for i in range(repeats):
        pair = [(jobs, job), (bares, bare)]
        for found, action in pair if i % 2 == 0 else pair[::-1]:
            found.append(action())
    return jobs, bares


def dataset(ws: Workspace, edge: int) -> str:
    """An EM-like volume (dark membranes), its cells as 3D labels, and as 2D labels."""
    import cc3d

    image = np.stack(list(slices(edge, edge)))
    cells = image >= 128
    labels = cc3d.connected_components(cells, connectivity=6).astype(np.uint32) * 3
    flat = np.stack([cc3d.connected_components(c, connectivity=4) for c in cells]).astype(np.uint32)
    sources = {"image": array_source(image), "segmentation": array_source(labels),
               "groundtruth": array_source(flat)}  # fmt: skip
    return import_dataset(ws, "filters-bench", sources).id


def run_filter_benchmarks(scratch: Path, quick: bool, log: Log) -> list[Result]:
    edge, repeats = (64, 1) if quick else (256, 3)
    ws = Workspace(scratch / "filters-workspace")
    made = dataset(ws, edge)
    results = []
    log(f"  each filter's job path against the bare library call, {edge}³, {repeats} pairs")
    for case in filter(lambda c: chosen(c.name), cases()):
        job = partial(sample, ws, made, job_run, case)
        bare = partial(sample, ws, made, bare_run, case)
        jobs, bares = paired(job, bare, repeats, warm_up=not quick)
        note = "" if case.layer == "image" else f"reads the {case.layer} layer"
        results.append(Result(f"{case.name}, job path, {edge}³", "s", jobs, bares, TARGET, note))
        log(f"    {case.name}: {np.median(jobs):.3f} s vs {np.median(bares):.3f} s")
    if chosen(IN_MEMORY):
        results.append(labelling_in_memory(ws, made, repeats, edge))
    shutil.rmtree(ws.root, ignore_errors=True)
    return results


def chosen(row: str) -> bool:
    """Whether UNEM_BENCH_FILTERS (unset: every row) names the row."""
    names = os.environ.get("UNEM_BENCH_FILTERS", "")
    parts = [part.strip().lower() for part in names.split(",") if part.strip()]
    return not parts or any(part in row.lower() for part in parts)


def labelling_in_memory(ws: Workspace, dataset: str, repeats: int, edge: int) -> Result:
    import cc3d

    image = np.asarray(open_level(ws.dataset_dir(dataset) / "image.zarr", "0")[:])
    mask = image >= 128
    pipeline = make_pipeline([{"filter": "label", "options": {"dims": "3d"}}])
    expected = cc3d.connected_components(mask, connectivity=6)
    assert np.array_equal(run_array(pipeline, mask), expected)

    def ours() -> float:
        return timed(lambda: run_array(pipeline, mask))

    def bare() -> float:
        return timed(lambda: cc3d.connected_components(mask, connectivity=6))

    runs, bares = paired(ours, bare, max(3, 2 * repeats), True)
    note = "the runner's stitched labelling (one slab here) of a mask, same result"
    return Result(f"{IN_MEMORY}, {edge}³", "s", runs, bares, TARGET, note)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
