"""Synthetic datasets of the Dojo benchmarks, imported with the core before the server starts.

- `import_tiles_dataset`: an EM-like uint8 stack (`tests.bench.stacks`) with a uint32
  segmentation of ~cells (nearest-seed regions, a few hundred per slice, changing along z),
  large enough for several pyramid levels and many tiles.
- `import_merge_dataset`: a segmentation split into two halves (segments 1 and 2, ~10⁷ voxels
  each at full size) with two 10³-voxel cubes (segments 3 and 4) cut out of them.

Slices are generated as the import reads them, so nothing but the workspace is written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import StackSource
from unem.workspace import Workspace

# Serial-section-like voxels: z is not halved until the coarser levels, so every level has
# many slices (and many distinct tiles for the cold-tile samples).
VOXEL_SIZE = (40.0, 8.0, 8.0)
CELL = 8  # px: cell boundaries are drawn on a grid this much coarser than the image
CELLS_PER_SLICE = 400
SLICES_PER_CELL = 6  # the cell pattern is redrawn every this many slices
BIG, OTHER_BIG, SMALL, OTHER_SMALL = 1, 2, 3, 4
CUBE = 10  # edge of the small segments: 10³ voxels


def generated(
    description: str, shape: tuple[int, int, int], dtype: str, read: Callable[[int], np.ndarray]
) -> StackSource:
    return StackSource(description, shape, dtype, read)


def image_source(shape: tuple[int, int, int]) -> StackSource:
    """The EM-like slices of `tests.bench.stacks`, cropped to the shape's y × x."""
    from tests.bench.stacks import slices

    depth, height, width = shape
    stream = slices(depth, edge=max(height, width))
    last: list[tuple[int, np.ndarray]] = []

    def read(z: int) -> np.ndarray:
        while not last or last[-1][0] < z:  # the import reads each slice once, in order
            last[:] = [(last[-1][0] + 1 if last else 0, next(stream))]
        return last[-1][1][:height, :width]

    return generated("synthetic EM stack", shape, "uint8", read)


def cells(z: int, height: int, width: int) -> np.ndarray:
    """Nearest-seed regions on a coarse grid, upsampled: blocky cell labels, ids unique in z."""
    from scipy import ndimage

    group = z // SLICES_PER_CELL
    rng = np.random.default_rng(group)
    coarse = (-(-height // CELL), -(-width // CELL))
    seeds = np.ones(coarse, bool)
    seeds.flat[rng.choice(seeds.size, CELLS_PER_SLICE, replace=False)] = False
    _, (iy, ix) = ndimage.distance_transform_edt(seeds, return_indices=True)
    ids = (iy * coarse[1] + ix).astype(np.uint32) + 1 + group * seeds.size
    ids[::7, :] = 0  # some background
    return np.repeat(np.repeat(ids, CELL, 0), CELL, 1)[:height, :width]


def cells_source(shape: tuple[int, int, int]) -> StackSource:
    cache: dict[int, np.ndarray] = {}

    def read(z: int) -> np.ndarray:
        group = z // SLICES_PER_CELL
        if group not in cache:
            cache.clear()
            cache[group] = cells(z, shape[1], shape[2])
        return cache[group]

    return generated("synthetic cells", shape, "uint32", read)


def halves(shape: tuple[int, int, int]) -> Callable[[int], np.ndarray]:
    """Slices of two halves (x < width / 2: segment 1, else 2) and two small cubes."""
    _, height, width = shape
    base = np.full((height, width), OTHER_BIG, np.uint32)
    base[:, : width // 2] = BIG
    with_cubes = base.copy()
    with_cubes[1 : 1 + CUBE, 1 : 1 + CUBE] = SMALL  # in the first half
    with_cubes[1 : 1 + CUBE, width - 1 - CUBE : width - 1] = OTHER_SMALL  # in the second

    def read(z: int) -> np.ndarray:
        return with_cubes if 1 <= z < 1 + CUBE else base

    return read


def import_tiles_dataset(ws: Workspace, shape: tuple[int, int, int]) -> Dataset:
    sources = {"image": image_source(shape), "segmentation": cells_source(shape)}
    return import_dataset(ws, "bench tiles", sources, VOXEL_SIZE)


def import_merge_dataset(ws: Workspace, shape: tuple[int, int, int]) -> Dataset:
    blank = np.zeros(shape[1:], np.uint8)
    sources = {
        "image": generated("blank", shape, "uint8", lambda z: blank),
        "segmentation": generated("halves", shape, "uint32", halves(shape)),
    }
    return import_dataset(ws, "bench merge", sources, VOXEL_SIZE)


def import_datasets(
    workspace: Path, tiles_shape: tuple[int, int, int], merge_shape: tuple[int, int, int]
) -> tuple[Dataset, Dataset]:
    """Create the workspace and import both datasets (the server is not running yet)."""
    ws = Workspace(workspace)
    return import_tiles_dataset(ws, tiles_shape), import_merge_dataset(ws, merge_shape)
