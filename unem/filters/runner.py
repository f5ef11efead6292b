"""Run a pipeline over a volume with bounded memory, yielding the result slice by slice.

Steps are grouped by how they run (`Filter.strategy`):

- **slice**: consecutive 2D steps run on each slice in turn as it streams by; objects
  numbered per slice (labelling, watershed) get ids unique across slices;
- **sequential**: slice after slice, remembering the previous (link 2D labels into 3D);
- **block**: the volume in blocks (slabs of slices, tiles of y and x) read with the
  filter's halo around them, so each block's centre equals the whole-volume result;
- **stream**: the filter's own passes over the volume (stitched labelling, two-pass
  histograms and counts);
- **whole**: the whole volume at once, after checking it fits in memory.

A block, stream or whole step needs to read its input more than once or out of order:
when that input is the output of earlier steps it is first kept in memory if it fits in a
slab, else written to a temporary store in `RunContext.scratch`. Everything else streams.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unem.errors import BadInput
from unem.filters.catalog import get_filter
from unem.filters.pipeline import Pipeline, Step
from unem.progress import Progress, no_progress
from unem.workspace import TMP_PREFIX

SLAB_VOXELS = 2**25  # voxels of the slabs a 3D step holds at once (float32: 128 MiB)
BLOCK_VOXELS = 2**24  # voxels of the blocks a block-wise step filters at once
TILE = 512  # block edge in y and x (the store's chunk edge)
READ_VOXELS = 2**22  # slices streamed to 2D steps are read this many voxels at a time
WHOLE_BYTES_PER_VOXEL = 24  # a whole-volume step's working memory (float64 copies and more)
MAX_UINT32 = 2**32 - 1


@dataclass
class RunContext:
    """Where a run keeps temporary stores (a folder made in `scratch_root` when first
    needed, removed by `close`), how large its blocks are, and its progress.

    `passes` is the number of times the run goes over the volume (set by `run_steps`);
    `advance(step, total)` reports within the current pass."""

    scratch_root: Path | None = None  # where the temporary folder goes (None: the system's)
    progress: Progress = no_progress
    slab_voxels: int = SLAB_VOXELS
    block_voxels: int = BLOCK_VOXELS
    tile: int = TILE
    passes: int = 1
    done_passes: int = 0
    stores: list[Path] = field(default_factory=list)
    folder: Path | None = None  # made when a step first needs a store

    def scratch(self) -> Path:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.scratch_root))
        return self.folder

    def close(self) -> None:
        """Remove the temporary stores."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def slab_depth(self, shape: tuple[int, ...]) -> int:
        return max(1, self.slab_voxels // max(int(shape[1]) * int(shape[2]), 1))

    def store(self, shape: tuple[int, ...], dtype: str) -> Any:
        """A new temporary array (zarr, one chunk per slice tile) in `scratch`."""
        import zarr

        from unem.volumes.store import chunks_for

        path = self.scratch() / f"step-{len(self.stores)}.zarr"
        self.stores.append(path)
        shape3 = tuple(int(s) for s in shape)
        return zarr.create_array(
            str(path), shape=shape3, chunks=chunks_for(shape3), dtype=dtype, fill_value=0
        )

    def whole(self, volume: Any) -> np.ndarray:
        """The whole volume in memory, or BadInput if it would not fit."""
        import psutil

        voxels = int(np.prod(volume.shape))
        need, free = voxels * WHOLE_BYTES_PER_VOXEL, psutil.virtual_memory().available
        if need > free:
            raise BadInput(
                f"A whole-volume step needs about {need / 2**30:.1f} GiB of memory for "
                f"{voxels} voxels; {free / 2**30:.1f} GiB are free. Run it in 2d, or on "
                "a smaller crop."
            )
        return np.asarray(volume[:])

    def advance(self, step: int, total: int, message: str = "") -> None:
        """`step` of `total` (slices) of the current pass done: reported as slices of all
        the passes."""
        self.progress(self.done_passes * total + step, self.passes * total, message)

    def next_pass(self) -> None:
        self.done_passes = min(self.done_passes + 1, self.passes - 1)


def groups(steps: Iterable[Step]) -> list[tuple[str, list[Step]]]:
    """Steps grouped into runs: consecutive slice steps together, the others alone."""
    found: list[tuple[str, list[Step]]] = []
    for step in steps:
        strategy = step.strategy
        if strategy == "slice" and found and found[-1][0] == "slice":
            found[-1][1].append(step)
        else:
            found.append((strategy, [step]))
    return found


def passes(plan: list[tuple[str, list[Step]]]) -> int:
    """How many times a run goes over the volume (as progress counts them): one, plus one
    per temporary store, plus the first pass of each stream step."""
    stored = sum(1 for i, (how, _) in enumerate(plan) if how in RANDOM_ACCESS and i > 0)
    return 1 + stored + sum(1 for how, _ in plan if how == "stream")


def run_steps(volume: Any, steps: Iterable[Step], run: RunContext) -> Iterator[np.ndarray]:
    """The slices of the result of `steps` on `volume` (z, y, x; read with [...] slicing).

    The slices are computed as they are consumed."""
    plan = groups(steps)
    run.passes = passes(plan)
    depth = int(volume.shape[0])
    stream: Iterator[np.ndarray] | None = None
    for how, group in plan:
        if how in RANDOM_ACCESS:
            if stream is not None:
                volume = materialise(stream, volume.shape, group[0], run)
            stream = RANDOM_ACCESS[how](volume, group[0], run)
        else:
            source = stream if stream is not None else read_slices(volume)
            stream = slice_group(source, group) if how == "slice" else sequential(source, group)
    final = stream if stream is not None else read_slices(volume)
    for z, plane in enumerate(final):
        yield plane
        run.advance(z + 1, depth, "filtering")


def read_slices(volume: Any) -> Iterator[np.ndarray]:
    """The slices of a volume, read a few at a time (about READ_VOXELS: the store reads
    the chunks of one request concurrently)."""
    depth, height, width = (int(s) for s in volume.shape)
    count = max(1, READ_VOXELS // max(height * width, 1))
    for z0 in range(0, depth, count):
        yield from np.asarray(volume[z0 : z0 + count])


def slice_group(planes: Iterator[np.ndarray], steps: list[Step]) -> Iterator[np.ndarray]:
    """2D steps on each slice; per-slice ids made unique across slices."""
    offsets = [0] * len(steps)
    for plane in planes:
        for i, step in enumerate(steps):
            plane = step.filter.apply(plane, step.options)
            if step.filter.new_ids:
                plane, offsets[i] = offset_ids(plane, offsets[i], step)
        yield plane


def offset_ids(labels: np.ndarray, offset: int, step: Step) -> tuple[np.ndarray, int]:
    count = int(labels.max(initial=0))
    if offset + count > MAX_UINT32:
        raise BadInput(f"{step.label}: more objects than 32-bit ids can number.")
    shifted = labels.astype(np.uint32)  # a copy: the filter's own output is not modified
    if offset:
        np.add(shifted, np.uint32(offset), out=shifted, where=shifted > 0)
    return shifted, offset + count


def sequential(planes: Iterator[np.ndarray], steps: list[Step]) -> Iterator[np.ndarray]:
    step = steps[0]
    assert step.filter.sequential is not None
    return step.filter.sequential(planes, step.options)


def materialise(
    planes: Iterator[np.ndarray], shape: tuple[int, ...], step: Step, run: RunContext
) -> Any:
    """Keep a stream of slices where `step` can read it at random: in memory when it fits
    in a slab, else in a temporary store."""
    first = next(planes)
    depth = int(shape[0])
    if int(np.prod(shape)) <= run.slab_voxels:
        kept = np.empty((depth, *first.shape), first.dtype)
        for z, plane in enumerate(itertools.chain([first], planes)):
            kept[z] = plane
            run.advance(z + 1, depth, f"before {step.label.lower()}")
        run.next_pass()
        return kept
    store = run.store(shape, str(first.dtype))
    count = max(1, READ_VOXELS // max(int(shape[1]) * int(shape[2]), 1))
    buffer: list[np.ndarray] = []
    for z, plane in enumerate(itertools.chain([first], planes)):
        buffer.append(plane)
        if len(buffer) == count or z == depth - 1:
            store[z + 1 - len(buffer) : z + 1] = np.stack(buffer)
            buffer = []
        run.advance(z + 1, depth, f"before {step.label.lower()}")
    run.next_pass()
    return store


def run_blocks(volume: Any, step: Step, run: RunContext) -> Iterator[np.ndarray]:
    """A 3D step block by block, each read with the filter's halo around it."""
    assert step.filter.halo is not None
    depth, height, width = (int(s) for s in volume.shape)
    if depth * height * width <= run.block_voxels:  # one block: no halo to read
        yield from step.filter.apply(np.asarray(volume[:]), step.options)
        return
    halo = step.filter.halo(step.options)
    ty, tx = min(height, run.tile), min(width, run.tile)
    slab = max(1, min(run.block_voxels // (ty * tx), run.slab_depth(volume.shape)))
    for z0 in range(0, depth, slab):
        z1 = min(z0 + slab, depth)
        out: np.ndarray | None = None
        for y0, x0 in itertools.product(range(0, height, ty), range(0, width, tx)):
            box = ((z0, z1), (y0, min(y0 + ty, height)), (x0, min(x0 + tx, width)))
            result = filter_block(volume, step, box, halo)
            if out is None:
                out = np.empty((z1 - z0, height, width), result.dtype)
            out[:, box[1][0] : box[1][1], box[2][0] : box[2][1]] = result
        assert out is not None
        yield from out


def filter_block(
    volume: Any, step: Step, box: tuple[tuple[int, int], ...], halo: tuple[int, int, int]
) -> np.ndarray:
    """The step's result inside `box` ((start, stop) along z, y, x), read with `halo`."""
    lows = [max(lo - h, 0) for (lo, _), h in zip(box, halo, strict=True)]
    highs = [min(hi + h, int(n)) for (_, hi), h, n in zip(box, halo, volume.shape, strict=True)]
    block = np.asarray(volume[tuple(slice(a, b) for a, b in zip(lows, highs, strict=True))])
    result = step.filter.apply(block, step.options)
    inner = tuple(slice(lo - a, hi - a) for (lo, hi), a in zip(box, lows, strict=True))
    cropped: np.ndarray = result[inner]
    return cropped


def run_stream(volume: Any, step: Step, run: RunContext) -> Iterator[np.ndarray]:
    """The step's own passes over the volume; one read and the whole-volume function when
    the volume fits in a slab (the same result: the passes exist to bound memory)."""
    assert step.filter.stream is not None
    if int(np.prod(volume.shape)) <= run.slab_voxels:
        run.next_pass()
        yield from step.filter.apply(np.asarray(volume[:]), step.options)
        return
    yield from step.filter.stream(volume, step.options, run)


def run_whole(volume: Any, step: Step, run: RunContext) -> Iterator[np.ndarray]:
    yield from step.filter.apply(run.whole(volume), step.options)


RANDOM_ACCESS: dict[str, Callable[[Any, Step, RunContext], Iterator[np.ndarray]]] = {
    "block": run_blocks,
    "stream": run_stream,
    "whole": run_whole,
}


def run_array(
    pipeline: Pipeline,
    volume: np.ndarray,
    scratch: Path | None = None,
    slab_voxels: int = SLAB_VOXELS,
    block_voxels: int = BLOCK_VOXELS,
    tile: int = TILE,
) -> np.ndarray:
    """The result of a pipeline on a volume in memory (z, y, x) as one array; smaller
    slabs, blocks and tiles than the defaults test the halos and the stitching."""
    run = RunContext(scratch, slab_voxels=slab_voxels, block_voxels=block_voxels, tile=tile)
    try:
        return np.stack(list(run_steps(volume, pipeline.steps, run)))
    finally:
        run.close()


def apply_filter(name: str, array: np.ndarray, **options: Any) -> np.ndarray:
    """One filter on a slice (y, x) or a volume (z, y, x), its options as keywords: a 2D
    filter runs on each slice of a volume, a 3D one needs a volume."""
    item = get_filter(name)
    step = Step(item, item.validate(options))
    if array.ndim == 2:
        if step.mode == "3d":
            raise BadInput(f"{name} works across slices with these options: give it a volume.")
        result: np.ndarray = item.apply(array, step.options)
        return result
    return run_array(Pipeline((step,)), array)
