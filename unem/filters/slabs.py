"""Connected components of volumes larger than memory: cc3d on slabs of slices, joined
across the slabs' faces with a union-find (the one `unem.filters.postprocess` uses).

Provisional ids of each slab go to a temporary store; the final ids are numbered in the
order of each object's first voxel, so the result equals cc3d on the whole volume.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from unem.filters.postprocess import UnionFind, drop_small, final_ids

if TYPE_CHECKING:
    from unem.filters.runner import RunContext

Connectivity = Literal["faces", "edges", "corners"]
CONNECTIVITY = {
    2: {"faces": 4, "edges": 8, "corners": 8},
    3: {"faces": 6, "edges": 18, "corners": 26},
}
NEAR = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
FACE_SHIFTS = {  # (dy, dx) of the voxels of the next slice a voxel touches
    6: [(0, 0)],
    18: NEAR,
    26: [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
}
READ_SLICES = 8


def components(array: np.ndarray, connectivity: str = "faces") -> np.ndarray:
    """Connected components (cc3d), ids 1..n (uint32) in order of first voxel; a mask's
    True voxels, or each label's own voxels (touching labels stay apart)."""
    import cc3d

    data = array.view(np.uint8) if array.dtype == bool else array
    neighbours: Any = CONNECTIVITY[array.ndim][connectivity]
    labels: np.ndarray = cc3d.connected_components(
        data, connectivity=neighbours, out_dtype=np.uint32
    )
    return labels


def stitched_components(
    volume: Any, connectivity: str, min_size: int, run: RunContext
) -> Iterator[np.ndarray]:
    """The slices of the components of `volume` (3D), those under `min_size` voxels as 0."""
    depth = int(volume.shape[0])
    slab = run.slab_depth(volume.shape)
    if slab >= depth:
        labels = components(np.asarray(volume[:]), connectivity)
        run.next_pass()
        yield from drop_small(labels, min_size) if min_size > 1 else labels
        return
    store, sets, sizes = run.store(volume.shape, "uint64"), UnionFind(), [np.zeros(1, np.int64)]
    neighbours = CONNECTIVITY[3][connectivity]
    last: tuple[np.ndarray, np.ndarray] | None = None
    for z0 in range(0, depth, slab):
        source = np.asarray(volume[z0 : z0 + slab])
        local = components(source, connectivity)
        count = int(local.max())
        labels = np.where(local > 0, local.astype(np.uint64) + np.uint64(len(sets.parent) - 1), 0)
        sets.add(count)
        sizes.append(np.bincount(local.ravel(), minlength=count + 1)[1:].astype(np.int64))
        if last is not None:
            for a, b in face_pairs(last[0], labels[0], last[1], source[0], neighbours):
                sets.union(a, b)
        store[z0 : z0 + len(labels)] = labels
        last = labels[-1], source[-1]
        run.advance(min(z0 + slab, depth), depth, "labelling slabs")
    lookup = final_ids(sets.roots(), np.concatenate(sizes), min_size)
    run.next_pass()
    for z0 in range(0, depth, READ_SLICES):
        yield from lookup[np.asarray(store[z0 : z0 + READ_SLICES])]


def face_pairs(
    below: np.ndarray,
    above: np.ndarray,
    below_source: np.ndarray,
    above_source: np.ndarray,
    neighbours: int,
) -> list[tuple[int, int]]:
    """Id pairs that touch across a slab face (the last slice of one slab, the first of the
    next), for 6-, 18- or 26-connectivity; only voxels of the same source label join."""
    height, width = below.shape
    found = []
    for dy, dx in FACE_SHIFTS[neighbours]:
        rows_b, rows_a = _window(dy, height)
        cols_b, cols_a = _window(dx, width)
        b, a = below[rows_b, cols_b], above[rows_a, cols_a]
        touching = (
            (b > 0) & (a > 0) & (below_source[rows_b, cols_b] == above_source[rows_a, cols_a])
        )
        found.append(np.stack([b[touching], a[touching]]))
    pairs = np.unique(np.concatenate(found, axis=1).astype(np.int64), axis=1)
    return [(int(a), int(b)) for a, b in pairs.T]


def _window(shift: int, size: int) -> tuple[slice, slice]:
    """Where index i of one slice meets index i + shift of the next."""
    return slice(max(0, -shift), size - max(0, shift)), slice(max(0, shift), size - max(0, -shift))
