"""The chunked store of a layer: a Zarr group holding a multi-resolution pyramid.

`<layer>.zarr/0` is full resolution; each next level halves y and x, and halves z too when
the voxels are near-isotropic at that level (EM sections are often 5-10× thicker than the
pixel size, and halving z then would blur across sections). Images are mean-pooled; labels
are strided (every other voxel), which never invents an id that is not in the data.
The group also carries OME-NGFF `multiscales` metadata so other viewers can open it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # zarr is imported where arrays are opened: the server starts faster
    import zarr
    from zarr.core.common import AccessModeLiteral

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
        return Level(str(data["path"]), _triple(data["shape"]), _triple(data["scale"]))


def _triple(values: Sequence[Any]) -> tuple[int, int, int]:
    z, y, x = (int(v) for v in values)
    return z, y, x


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


def downsample(block: Sequence[np.ndarray] | np.ndarray, labels: bool) -> np.ndarray:
    """Halve y and x of `block` (k slices of y × x) and merge its k slices into one slice.

    Images: the mean of each 2×2 (×k) block, rounded half up, in the input dtype; edges of
    odd size are padded by repeating the last row/column. Labels: the first slice, strided.
    Works one input slice at a time, so memory stays near one output slice of sums.
    """
    if labels:
        return np.array(block[0][::2, ::2])
    first = block[0]
    integer = np.issubdtype(first.dtype, np.integer)
    y, x = first.shape
    total = np.zeros(((y + 1) // 2, (x + 1) // 2), np.int64 if integer else np.float64)
    for plane in block:
        even = np.pad(plane, ((0, y % 2), (0, x % 2)), mode="edge") if (y | x) % 2 else plane
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            total += even[dy::2, dx::2]
    count = 4 * len(block)
    if integer:
        total += count // 2  # integer division below then rounds half up, exactly
        total //= count
    else:
        total /= count
    return total.astype(first.dtype)


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
    import zarr

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


def recreate_coarse_levels(
    path: Path,
    levels: Sequence[Level],
    dtype: str,
    kind: str,
    voxel_size: Sequence[float],
) -> None:
    """Empty every level but 0 of an existing layer (dropping levels no longer planned)."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    planned = {level.path for level in levels}
    for name in list(group.array_keys()):
        if name != "0" and name not in planned:
            del group[name]
    for level in levels[1:]:
        group.create_array(
            level.path,
            shape=level.shape,
            chunks=chunks_for(level.shape),
            dtype=dtype,
            fill_value=0,
            overwrite=True,
        )
    group.attrs.update(
        {
            "unem": {"kind": kind, "voxel_size": list(voxel_size)},
            "multiscales": [ome_multiscales(levels, voxel_size)],
        }
    )


def level_nm(level: Level, voxel_size: Sequence[float]) -> list[float]:
    """The voxel size of `level` in nm (z, y, x)."""
    return [float(v * s) for v, s in zip(voxel_size, level.scale, strict=True)]


def ome_multiscales(levels: Sequence[Level], voxel_size: Sequence[float]) -> dict[str, Any]:
    axes = [{"name": name, "type": "space", "unit": "nanometer"} for name in "zyx"]
    datasets = [
        {
            "path": level.path,
            "coordinateTransformations": [{"type": "scale", "scale": level_nm(level, voxel_size)}],
        }
        for level in levels
    ]
    return {"version": "0.4", "axes": axes, "datasets": datasets}


BLOCK_BYTES = 4 * 2**20  # slices are written to Zarr in blocks of about this size


class BlockWriter:
    """Write (array, z0, block) jobs on one background thread, at most two in flight.

    Compression and file writes then overlap with reading and downsampling the next
    slices; the bounded queue keeps memory flat. An error is raised again in `put` or
    `close`, so a failed write stops the import.
    """

    def __init__(self) -> None:
        self.jobs: queue.Queue[tuple[Any, int, np.ndarray] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="zarr-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                array, z0, block = job
                try:
                    array[z0:z0 + len(block)] = block
                except BaseException as error:  # handed to the importing thread
                    self.error = error

    def put(self, array: Any, z0: int, block: np.ndarray) -> None:
        self._raise()
        self.jobs.put((array, z0, block))

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop after the queued jobs without raising (the caller is already failing)."""
        self.error = self.error or RuntimeError("aborted")
        self.jobs.put(None)
        self.thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


class PyramidWriter:
    """Write a layer slice by slice, building every pyramid level on the way.

    Each level gathers its slices into blocks of about BLOCK_BYTES, written by a
    background thread; memory holds at most a few blocks per level whatever the stack's
    length, so a stack larger than memory imports with bounded memory.

    `rebuild=True` keeps the layer's level 0 as it is and writes the coarser levels anew
    from the slices given (level 0's own, read back): a pyramid after external changes.
    """

    def __init__(
        self,
        path: Path,
        shape: Sequence[int],
        dtype: str,
        kind: str,
        voxel_size: Sequence[float],
        *,
        rebuild: bool = False,
    ) -> None:
        self.levels = plan_levels(shape, voxel_size)
        self.labels = kind in LABEL_KINDS
        self.rebuild = rebuild
        if rebuild:
            recreate_coarse_levels(path, self.levels, dtype, kind, voxel_size)
        else:
            create_pyramid(path, self.levels, dtype, kind, voxel_size)
        self.arrays = [open_level(path, level.path, mode="r+") for level in self.levels]
        self.pending: list[list[np.ndarray]] = [[] for _ in self.levels]
        self.blocks: list[list[np.ndarray]] = [[] for _ in self.levels]
        self.written = [0 for _ in self.levels]
        self.block_slices = [self._slices_per_block(level, dtype) for level in self.levels]
        self.writer = BlockWriter()

    @staticmethod
    def _slices_per_block(level: Level, dtype: str) -> int:
        slice_bytes = level.shape[1] * level.shape[2] * np.dtype(dtype).itemsize
        return max(1, BLOCK_BYTES // max(slice_bytes, 1))

    def write(self, slice_2d: np.ndarray) -> None:
        """Append the next slice of full resolution."""
        self._append(0, slice_2d)

    def _append(self, index: int, slice_2d: np.ndarray) -> None:
        if index > 0 or not self.rebuild:
            self.blocks[index].append(slice_2d)
            if len(self.blocks[index]) == self.block_slices[index]:
                self._write_block(index)
        if index + 1 < len(self.levels):
            self.pending[index + 1].append(slice_2d)
            if len(self.pending[index + 1]) == z_factor(self.levels, index + 1):
                self._flush(index + 1)

    def _write_block(self, index: int) -> None:
        block, self.blocks[index] = np.stack(self.blocks[index]), []
        self.writer.put(self.arrays[index], self.written[index], block)
        self.written[index] += len(block)

    def _flush(self, index: int) -> None:
        block, self.pending[index] = self.pending[index], []
        self._append(index, downsample(block, self.labels))

    def __enter__(self) -> PyramidWriter:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if error is None:
            self.close()
        else:
            self.writer.abort()

    def close(self) -> None:
        """Write what is left: partial blocks, and slices short of a full z factor."""
        try:
            for index in range(1, len(self.levels)):
                if self.pending[index]:
                    self._flush(index)
            for index in range(len(self.levels)):
                if self.blocks[index]:
                    self._write_block(index)
        finally:
            self.writer.close()


def open_level(path: Path, level: str = "0", mode: AccessModeLiteral = "r") -> zarr.Array[Any]:
    """One level of a layer's pyramid (`path` is the layer's `.zarr` folder)."""
    import zarr

    return zarr.open_array(str(path / level), mode=mode)
