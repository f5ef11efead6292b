"""The chunked store of a layer: a Zarr group holding a multi-resolution pyramid.

`<layer>.zarr/0` is full resolution; each next level halves y and x, and halves z too when
the voxels are near-isotropic at that level (EM sections are often 5-10× thicker than the
pixel size, and halving z then would blur across sections). Images are mean-pooled; labels
are strided (every other voxel), which never invents an id that is not in the data.
The group also carries OME-NGFF `multiscales` metadata so other viewers can open it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

TILE = 512  # chunk edge in y and x: a Dojo tile reads exactly one chunk
TOP_LEVEL_MAX = 256  # build levels until the whole slice fits in this many pixels
LABEL_KINDS = frozenset({"segmentation", "groundtruth"})


@dataclass(frozen=True)
class Level:
    """One pyramid level: its array path, shape and scale (in level-0 voxels) along z, y, x."""

    path: str
    shape: tuple[int, int, int]
    scale: tuple[int, int, int]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "shape": list(self.shape), "scale": list(self.scale)}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Level:
        return Level(data["path"], tuple(data["shape"]), tuple(data["scale"]))  # type: ignore[arg-type]


def plan_levels(shape: Sequence[int], voxel_size: Sequence[float]) -> list[Level]:
    """The pyramid levels of a volume of `shape` (z, y, x) with `voxel_size` (z, y, x) nm."""
    z, y, x = (int(s) for s in shape)
    scale = [1, 1, 1]
    levels = [Level("0", (z, y, x), (1, 1, 1))]
    while max(y, x) > TOP_LEVEL_MAX:
        next_xy_nm = voxel_size[1] * scale[1] * 2
        halve_z = z > 1 and voxel_size[0] * scale[0] * 2 <= 1.5 * next_xy_nm
        scale = [scale[0] * (2 if halve_z else 1), scale[1] * 2, scale[2] * 2]
        z, y, x = (z + 1) // 2 if halve_z else z, (y + 1) // 2, (x + 1) // 2
        levels.append(Level(str(len(levels)), (z, y, x), (scale[0], scale[1], scale[2])))
    return levels


def z_factor(levels: Sequence[Level], index: int) -> int:
    """How many slices of level `index - 1` make one slice of level `index`."""
    return levels[index].scale[0] // levels[index - 1].scale[0]


def downsample(block: np.ndarray, labels: bool) -> np.ndarray:
    """Halve y and x of `block` (k, y, x) and merge its k slices into one slice.

    Images: the mean of each 2×2 (×k) block, rounded, in the input dtype; edges of odd
    size are padded by repeating the last row/column. Labels: the first slice, strided.
    """
    if labels:
        return block[0, ::2, ::2].copy()
    k, y, x = block.shape
    padded = np.pad(block, ((0, 0), (0, y % 2), (0, x % 2)), mode="edge")
    sums = padded.reshape(k, (y + 1) // 2, 2, (x + 1) // 2, 2).sum(axis=(0, 2, 4), dtype=np.float64)
    mean = sums / (4 * k)
    if np.issubdtype(block.dtype, np.integer):
        return np.rint(mean).astype(block.dtype)
    return mean.astype(block.dtype)


def chunks_for(shape: Sequence[int]) -> tuple[int, int, int]:
    return (1, min(TILE, int(shape[1])), min(TILE, int(shape[2])))


def create_pyramid(
    path: Path,
    levels: Sequence[Level],
    dtype: str,
    kind: str,
    voxel_size: Sequence[float],
) -> zarr.Group:
    """Create the empty arrays of a layer's pyramid (fill value 0: an empty layer costs nothing)."""
    group = zarr.open_group(str(path), mode="w")
    for level in levels:
        group.create_array(
            level.path, shape=level.shape, chunks=chunks_for(level.shape), dtype=dtype, fill_value=0
        )
    group.attrs.update(
        {
            "unem": {"kind": kind, "voxel_size": list(voxel_size)},
            "multiscales": [ome_multiscales(levels, voxel_size)],
        }
    )
    return group


def ome_multiscales(levels: Sequence[Level], voxel_size: Sequence[float]) -> dict[str, Any]:
    axes = [{"name": name, "type": "space", "unit": "nanometer"} for name in "zyx"]
    datasets = [
        {
            "path": level.path,
            "coordinateTransformations": [
                {"type": "scale", "scale": [float(v * s) for v, s in zip(voxel_size, level.scale)]}
            ],
        }
        for level in levels
    ]
    return {"version": "0.4", "axes": axes, "datasets": datasets}


class PyramidWriter:
    """Write a layer slice by slice, building every pyramid level on the way.

    Memory holds at most one slice per level (two where z is halved), so a stack of any
    length imports with bounded memory.
    """

    def __init__(
        self, path: Path, shape: Sequence[int], dtype: str, kind: str, voxel_size: Sequence[float]
    ) -> None:
        self.levels = plan_levels(shape, voxel_size)
        self.labels = kind in LABEL_KINDS
        group = create_pyramid(path, self.levels, dtype, kind, voxel_size)
        self.arrays = [group[level.path] for level in self.levels]
        self.pending: list[list[np.ndarray]] = [[] for _ in self.levels]
        self.written = [0 for _ in self.levels]

    def write(self, slice_2d: np.ndarray) -> None:
        """Append the next slice of full resolution."""
        self._append(0, slice_2d)

    def _append(self, index: int, slice_2d: np.ndarray) -> None:
        self.arrays[index][self.written[index]] = slice_2d
        self.written[index] += 1
        if index + 1 < len(self.levels):
            self.pending[index + 1].append(slice_2d)
            if len(self.pending[index + 1]) == z_factor(self.levels, index + 1):
                self._flush(index + 1)

    def _flush(self, index: int) -> None:
        block = np.stack(self.pending[index])
        self.pending[index] = []
        self._append(index, downsample(block, self.labels))

    def close(self) -> None:
        """Write what is left when the slice count is not a multiple of the z factors."""
        for index in range(1, len(self.levels)):
            if self.pending[index]:
                self._flush(index)


def open_level(path: Path, level: str = "0", mode: str = "r") -> zarr.Array:
    array = zarr.open_array(str(path / level), mode=mode)  # type: ignore[arg-type]
    return array
