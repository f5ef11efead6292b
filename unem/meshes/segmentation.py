"""Reading the current segmentation (fragment ids through the fragment → segment mapping).

Voxels hold fragment ids; the `fragments` table of `unem.proofread` maps each to its segment
and keeps its voxel count and a bounding box that contains it (boxes only grow as voxels are
painted, so they may be larger than the fragment now is, never smaller).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unem.errors import NotFound
from unem.proofread import mapping as fragments
from unem.proofread.edits import EDIT_LAYER, prepare_for_proofreading
from unem.proofread.voxels import Box
from unem.volumes.datasets import Dataset, Layer, get_dataset
from unem.volumes.store import TILE, open_level
from unem.workspace import Workspace

BLOCK_VOXELS = 2**24  # a block of labels meshed at once: 64 MiB of uint32 (zmesh needs ~5× that)


@dataclass(frozen=True)
class Segmentation:
    """A dataset's segmentation layer, as `open_segmentation` opens it."""

    ws: Workspace
    dataset: Dataset
    layer: Layer

    @property
    def id(self) -> str:
        return self.dataset.id

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.layer.shape

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """nm, (z, y, x)."""
        return self.dataset.voxel_size

    def array(self) -> Any:
        """Full-resolution fragment ids (a zarr array)."""
        return open_level(self.layer.path, self.layer.levels[0].path)

    def segment_box(self, segment: int) -> Box:
        """A box containing every voxel of `segment`; NotFound if it has none."""
        row = self.ws.db.execute(
            "select min(z0), min(y0), min(x0), max(z1), max(y1), max(x1) from fragments "
            "where dataset_id = ? and segment = ? and voxels > 0",
            [self.id, segment],
        ).fetchone()
        if segment <= 0 or row is None or row[0] is None:
            raise NotFound(f"Segment {segment} does not exist in {self.id}.")
        return Box.from_json(row)

    def segment_boxes(self) -> dict[int, Box]:
        """Every segment with voxels → a box containing them."""
        rows = self.ws.db.execute(
            "select segment, min(z0), min(y0), min(x0), max(z1), max(y1), max(x1) from "
            "fragments where dataset_id = ? and voxels > 0 and segment != 0 group by segment",
            [self.id],
        ).fetchall()
        return {int(r[0]): Box.from_json(r[1:]) for r in rows}

    def segment_mask(self, segment: int) -> tuple[np.ndarray, Box]:
        """The voxels of `segment` inside its box (boolean, z y x), and the box."""
        import fastremap

        box = self.segment_box(segment)
        members = fragments.fragments_of(self.ws.db, self.id, segment)
        block = np.asarray(self.array()[box.slices])
        mask: np.ndarray = fastremap.mask_except(block, members, in_place=True) != 0
        if not mask.any():
            raise NotFound(f"Segment {segment} has no voxels in {self.id}.")
        return mask, box

    def mapping(self) -> dict[int, int]:
        """The fragments whose segment is not their own id."""
        return fragments.non_identity_mapping(self.ws.db, self.id)


def open_segmentation(ws: Workspace, dataset_id: str) -> Segmentation:
    """The dataset's segmentation, its fragments indexed (done once, at first use)."""
    dataset = get_dataset(ws, dataset_id)
    layer = dataset.layer(EDIT_LAYER)
    if not fragments.is_indexed(ws.db, dataset_id):
        prepare_for_proofreading(ws, dataset_id)
    return Segmentation(ws, dataset, layer)


@dataclass(frozen=True)
class Blocks:
    """A volume cut into blocks (z-major order) for block-wise multi-label meshing."""

    shape: tuple[int, int, int]
    block: tuple[int, int, int]

    @property
    def grid(self) -> tuple[int, int, int]:
        z, y, x = (-(-n // b) for n, b in zip(self.shape, self.block, strict=True))
        return z, y, x

    def __len__(self) -> int:
        z, y, x = self.grid
        return z * y * x

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        """The start (z, y, x) of each block."""
        gz, gy, gx = self.grid
        bz, by, bx = self.block
        for iz in range(gz):
            for iy in range(gy):
                for ix in range(gx):
                    yield iz * bz, iy * by, ix * bx

    def last_block(self, box: Box) -> int:
        """The index of the last block (in iteration order) that meshes part of the
        surface of what fills `box`: after it, that surface is complete."""
        _, gy, gx = self.grid
        iz, iy, ix = ((hi - 1) // b for hi, b in zip(box.to_json()[3:], self.block, strict=True))
        return int((iz * gy + iy) * gx + ix)

    def read(
        self, array: Any, start: Sequence[int], relabel: dict[int, int]
    ) -> tuple[np.ndarray, tuple[int, int, int]]:
        """The labels of the block at `start`, mapping applied, ready for `block_surfaces`:
        one more voxel on each high side inside the volume (blocks overlap by one voxel, so
        each marching cube lies in exactly one block), one voxel of background on each side
        that is the volume's face (surfaces close there). Returns the labels and the volume
        voxel of their [0, 0, 0]."""
        import fastremap

        stops = [min(s + b + 1, n) for s, b, n in zip(start, self.block, self.shape, strict=True)]
        pads = [
            (int(s == 0), int(e == n)) for s, e, n in zip(start, stops, self.shape, strict=True)
        ]
        inner = [e - s for s, e in zip(start, stops, strict=True)]
        labels = np.zeros(
            [n + lo + hi for n, (lo, hi) in zip(inner, pads, strict=True)], array.dtype
        )
        read_into(
            array,
            tuple(slice(a, b) for a, b in zip(start, stops, strict=True)),
            labels[tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, inner, strict=True))],
        )
        if relabel:  # fragment 0 is never mapped: the padding stays background
            labels = fastremap.remap(labels, relabel, preserve_missing_labels=True, in_place=True)
        origin = (start[0] - pads[0][0], start[1] - pads[1][0], start[2] - pads[2][0])
        return labels, origin


def read_into(array: Any, selection: tuple[slice, ...], out: np.ndarray) -> None:
    """Read a zarr selection straight into `out` (a view of the padded block: no copy)."""
    from zarr.core.buffer import default_buffer_prototype

    buffer = default_buffer_prototype().nd_buffer.from_numpy_array(out)
    array.get_basic_selection(selection, out=buffer)


def plan_blocks(shape: Sequence[int], budget: int = BLOCK_VOXELS) -> Blocks:
    """Blocks of at most `budget` voxels: the whole volume when it fits, else slabs of tiles
    (y and x in multiples of the store's tile, so every chunk is read once)."""
    z, y, x = (int(n) for n in shape)
    if z * y * x <= budget:
        return Blocks((z, y, x), (z, y, x))
    by, bx = min(y, 4 * TILE), min(x, 4 * TILE)
    while by * bx * 8 > budget and max(by, bx) > TILE:
        by, bx = (max(by // 2, 1), bx) if by >= bx else (by, max(bx // 2, 1))
    return Blocks((z, y, x), (max(1, min(z, budget // (by * bx))), by, bx))
