"""Boxes and voxel patches: what a voxel edit changed, storable, invertible, appliable.

A patch holds the values of one box before and after an edit. Stored compressed in the
edit log, it is both the redo record (replayed after a crash) and the undo record.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from unem.volumes.store import Level

if TYPE_CHECKING:  # zarr is imported where arrays are opened: the server starts faster
    import zarr


@dataclass(frozen=True)
class Box:
    """A half-open box [z0, z1) × [y0, y1) × [x0, x1) in full-resolution voxels."""

    z0: int
    y0: int
    x0: int
    z1: int
    y1: int
    x1: int

    @staticmethod
    def around(z: int, y: int, x: int, radius: Sequence[int], shape: Sequence[int]) -> Box:
        """The box of `radius` (z, y, x) around a point, clipped to `shape`."""
        rz, ry, rx = radius
        return Box(z - rz, y - ry, x - rx, z + rz + 1, y + ry + 1, x + rx + 1).clip(shape)

    def clip(self, shape: Sequence[int]) -> Box:
        return Box(max(self.z0, 0), max(self.y0, 0), max(self.x0, 0),
                   min(self.z1, shape[0]), min(self.y1, shape[1]), min(self.x1, shape[2]))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z1 - self.z0, self.y1 - self.y0, self.x1 - self.x0)

    @property
    def empty(self) -> bool:
        return min(self.shape) <= 0

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return (slice(self.z0, self.z1), slice(self.y0, self.y1), slice(self.x0, self.x1))

    def union(self, other: Box) -> Box:
        return Box(min(self.z0, other.z0), min(self.y0, other.y0), min(self.x0, other.x0),
                   max(self.z1, other.z1), max(self.y1, other.y1), max(self.x1, other.x1))

    def intersects(self, other: Box) -> bool:
        return (self.z0 < other.z1 and other.z0 < self.z1 and self.y0 < other.y1
                and other.y0 < self.y1 and self.x0 < other.x1 and other.x0 < self.x1)

    def to_json(self) -> list[int]:
        return [self.z0, self.y0, self.x0, self.z1, self.y1, self.x1]

    @staticmethod
    def from_json(values: Sequence[int]) -> Box:
        z0, y0, x0, z1, y1, x1 = (int(v) for v in values)
        return Box(z0, y0, x0, z1, y1, x1)


@dataclass(frozen=True, eq=False)
class VoxelPatch:
    """The fragment ids of `box` before and after an edit (arrays of the box's shape)."""

    box: Box
    before: np.ndarray
    after: np.ndarray

    def inverse(self) -> VoxelPatch:
        return VoxelPatch(self.box, self.after, self.before)

    @property
    def changed(self) -> np.ndarray:
        mask: np.ndarray = self.before != self.after
        return mask

    def cropped(self) -> VoxelPatch:
        """The same patch restricted to the bounding box of its changed voxels.

        A tool computes its patch over a generous box (a fill's whole search window); the
        log, the conflict checks and the fragment boxes only need the part that changed.
        """
        changed = self.changed
        if not changed.any():
            return self
        (z0, z1), (y0, y1), (x0, x1) = (_extent(np.any(changed, axis=axes))
                                        for axes in ((1, 2), (0, 2), (0, 1)))
        local = Box(z0, y0, x0, z1, y1, x1)
        box = Box(self.box.z0 + z0, self.box.y0 + y0, self.box.x0 + x0,
                  self.box.z0 + z1, self.box.y0 + y1, self.box.x0 + x1)
        return VoxelPatch(box, self.before[local.slices], self.after[local.slices])

    def count_deltas(self) -> dict[int, int]:
        """How many voxels each fragment id gains (positive) or loses (negative)."""
        changed = self.changed
        deltas: dict[int, int] = {}
        for values, sign in ((self.after[changed], 1), (self.before[changed], -1)):
            ids, counts = np.unique(values, return_counts=True)
            for fragment, count in zip(ids.tolist(), counts.tolist(), strict=True):
                deltas[fragment] = deltas.get(fragment, 0) + sign * count
        return {f: d for f, d in deltas.items() if d}

    def encode(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, box=np.array(self.box.to_json()), before=self.before, after=self.after)
        return zlib.compress(buffer.getvalue(), 6)

    @staticmethod
    def decode(data: bytes) -> VoxelPatch:
        with np.load(io.BytesIO(zlib.decompress(data))) as arrays:
            return VoxelPatch(Box.from_json(arrays["box"].tolist()), arrays["before"],
                              arrays["after"])


def _extent(along: np.ndarray | np.bool_) -> tuple[int, int]:
    """First and one-past-last index where a 1D boolean array is true."""
    where = np.flatnonzero(np.asarray(along))
    return int(where[0]), int(where[-1]) + 1


def read_box(array: zarr.Array[Any], box: Box) -> np.ndarray:
    return np.asarray(array[box.slices])


def level_array(group: zarr.Group, level: Level) -> zarr.Array[Any]:
    """The array of one pyramid level of a layer's group."""
    import zarr

    array = group[level.path]
    if not isinstance(array, zarr.Array):
        raise TypeError(f"{level.path} of {group.store} is not an array")
    return array


def write_patch(group: zarr.Group, levels: Sequence[Level], patch: VoxelPatch) -> None:
    """Write the patch's `after` values into level 0 and refresh every coarser level.

    Coarser label levels are strided (level voxel = the level-0 voxel at its origin), so
    only the level voxels whose origin lies inside the box change, and their new values
    are all inside the patch: no other voxel has to be read.
    """
    box = patch.box
    level_array(group, levels[0])[box.slices] = patch.after
    for level in levels[1:]:
        sz, sy, sx = level.scale
        starts = [-(-lo // s) for lo, s in ((box.z0, sz), (box.y0, sy), (box.x0, sx))]
        stops = [-(-hi // s) for hi, s in ((box.z1, sz), (box.y1, sy), (box.x1, sx))]
        if any(stop <= start for start, stop in zip(starts, stops, strict=True)):
            continue
        sampled = patch.after[
            starts[0] * sz - box.z0::sz, starts[1] * sy - box.y0::sy, starts[2] * sx - box.x0::sx
        ][: stops[0] - starts[0], : stops[1] - starts[1], : stops[2] - starts[2]]
        target = tuple(slice(a, b) for a, b in zip(starts, stops, strict=True))
        level_array(group, level)[target] = sampled
