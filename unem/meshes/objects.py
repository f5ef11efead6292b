"""The object table: each segment's size, volume, surface area, centroid and bounding box.

Cost. The table is built from per-FRAGMENT statistics (voxel count, sum of voxel
coordinates, tight bounding box), grouped by segment through the mapping:
- the first call scans the volume once, in slabs (fastremap + cc3d: ~1 s per 10⁷ voxels);
- the statistics are cached (`fragments.v<version>.npz` in the mesh cache) at the version of
  the last edit that rewrote voxels; merges and fragment splits change only the mapping, so
  they cost nothing but the grouping (O(fragments));
- a later paint, erase, fill or cut is applied from its voxel patch in the edit log
  (O(voxels it changed)); only a fragment that lost voxels on the faces of its box has that
  box re-read to shrink it.
Surface areas come from the cached lod-0 meshes (None until a segment is meshed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from unem.meshes.cache import MeshCache, write_atomically
from unem.meshes.segmentation import BLOCK_VOXELS, Segmentation, open_segmentation
from unem.meshes.versions import segment_versions, voxel_version, wait_until_settled
from unem.proofread.segments import segment_names
from unem.proofread.voxels import Box, VoxelPatch
from unem.workspace import Workspace


@dataclass(frozen=True, eq=False)
class Stats:
    """Per-id statistics, one row per id (sorted): count, coordinate sums, box [lo, hi)."""

    ids: np.ndarray  # uint64 (n,)
    counts: np.ndarray  # int64 (n,)
    sums: np.ndarray  # float64 (n, 3): sums of voxel indices z, y, x
    lo: np.ndarray  # int64 (n, 3)
    hi: np.ndarray  # int64 (n, 3), exclusive

    @staticmethod
    def empty() -> Stats:
        return Stats(
            np.zeros(0, np.uint64),
            np.zeros(0, np.int64),
            np.zeros((0, 3)),
            np.zeros((0, 3), np.int64),
            np.zeros((0, 3), np.int64),
        )

    @staticmethod
    def concatenate(parts: list[Stats]) -> Stats:
        return Stats(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("ids", "counts", "sums", "lo", "hi")
            )
        )

    def grouped(self, keys: np.ndarray) -> Stats:
        """Rows with equal `keys` combined (counts and sums added, boxes joined)."""
        if len(keys) == 0:
            return Stats.empty()
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        return Stats(
            keys[starts].astype(np.uint64),
            np.add.reduceat(self.counts[order], starts),
            np.add.reduceat(self.sums[order], starts),
            np.minimum.reduceat(self.lo[order], starts),
            np.maximum.reduceat(self.hi[order], starts),
        )


def slab_stats(labels: np.ndarray, z0: int) -> Stats:
    """Statistics of every non-zero id of a slab of labels starting at slice `z0`."""
    import cc3d
    import fastremap

    dense, remap = fastremap.renumber(labels, in_place=False)
    stats = cc3d.statistics(dense, no_slice_conversion=True)
    ids = np.zeros(len(stats["voxel_counts"]), np.uint64)
    for original, new in remap.items():
        ids[int(new)] = int(original)
    counts = stats["voxel_counts"].astype(np.int64)
    keep = (counts > 0) & (ids != 0)
    boxes = stats["bounding_boxes"].astype(np.int64)  # axis0 min, max, axis1 min, max, ...
    offset = np.array([z0, 0, 0])
    lo = boxes[:, 0::2] + offset
    hi = boxes[:, 1::2] + offset + 1
    sums = (stats["centroids"] + offset) * counts[:, None]
    return Stats(ids[keep], counts[keep], sums[keep], lo[keep], hi[keep])


def scan(segmentation: Segmentation) -> Stats:
    """Fragment statistics of the whole volume, slab by slab (bounded memory)."""
    array = segmentation.array()
    depth, height, width = segmentation.shape
    step = max(1, BLOCK_VOXELS // max(height * width, 1))
    parts = [slab_stats(np.asarray(array[z : z + step]), z) for z in range(0, depth, step)]
    merged = Stats.concatenate(parts)
    return merged.grouped(merged.ids)


def apply_patch(stats: Stats, patch: VoxelPatch) -> tuple[Stats, set[int]]:
    """`stats` after a voxel edit; and the fragments whose box may now be too large."""
    changed = patch.changed
    where = np.argwhere(changed) + np.array([patch.box.z0, patch.box.y0, patch.box.x0])
    rows = [stats]
    for values, sign in ((patch.after[changed], 1), (patch.before[changed], -1)):
        rows.append(
            Stats(
                values.astype(np.uint64),
                np.full(len(values), sign, np.int64),
                sign * where.astype(np.float64),
                where if sign > 0 else np.full_like(where, 2**62),
                where + 1 if sign > 0 else np.full_like(where, -1),
            )
        )
    merged = Stats.concatenate(rows)
    result = merged.grouped(merged.ids)
    lost = Stats(
        patch.before[changed].astype(np.uint64),
        np.ones(int(changed.sum()), np.int64),
        where.astype(np.float64),
        where,
        where + 1,
    )
    lost = lost.grouped(lost.ids)
    index = np.clip(np.searchsorted(result.ids, lost.ids), 0, max(len(result.ids) - 1, 0))
    on_face = np.any((lost.lo == result.lo[index]) | (lost.hi == result.hi[index]), axis=1)
    return result, {int(f) for f in lost.ids[on_face]} - {0}


def shrink_boxes(stats: Stats, fragments: set[int], segmentation: Segmentation) -> Stats:
    """Re-read the boxes of `fragments` and make them tight again."""
    array = segmentation.array()
    lo, hi = stats.lo.copy(), stats.hi.copy()
    for fragment in fragments:
        row = int(np.searchsorted(stats.ids, fragment))
        if row >= len(stats.ids) or stats.ids[row] != fragment or stats.counts[row] <= 0:
            continue
        box = Box(*lo[row].tolist(), *hi[row].tolist())
        inside = np.argwhere(np.asarray(array[box.slices]) == fragment)
        lo[row], hi[row] = inside.min(axis=0) + lo[row], inside.max(axis=0) + lo[row] + 1
    return Stats(stats.ids, stats.counts, stats.sums, lo, hi)


def fragment_stats(segmentation: Segmentation, cache: MeshCache) -> Stats:
    """The statistics of every fragment now (see the module docstring for the cost)."""
    db, dataset_id = segmentation.ws.db, segmentation.id
    settled = wait_until_settled(db, dataset_id)
    current = voxel_version(db, dataset_id)
    found = sorted(cache.root.glob("fragments.v*.npz"), key=lambda p: int(p.stem[11:]))
    if found and int(found[-1].stem[11:]) <= current:
        stats = load_stats(found[-1])
        rows = db.execute(
            "select patch from edits where dataset_id = ? and version > ? and "
            "patch is not null order by version",
            [dataset_id, int(found[-1].stem[11:])],
        ).fetchall()
        stale: set[int] = set()
        for (data,) in rows:
            stats, lost = apply_patch(stats, VoxelPatch.decode(data))
            stale |= lost
        stats = shrink_boxes(drop_empty(stats), stale, segmentation)
    else:
        stats = scan(segmentation)
    if settled and (not found or int(found[-1].stem[11:]) != current):
        save_stats(cache.root / f"fragments.v{current}.npz", stats)
        for old in found:
            old.unlink(missing_ok=True)
    return stats


def drop_empty(stats: Stats) -> Stats:
    keep = (stats.counts > 0) & (stats.ids != 0)
    return Stats(
        stats.ids[keep], stats.counts[keep], stats.sums[keep], stats.lo[keep], stats.hi[keep]
    )


def save_stats(path: Any, stats: Stats) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, ids=stats.ids, counts=stats.counts, sums=stats.sums, lo=stats.lo, hi=stats.hi)
    write_atomically(path, buffer.getvalue())


def load_stats(path: Any) -> Stats:
    with np.load(path) as arrays:
        return Stats(arrays["ids"], arrays["counts"], arrays["sums"], arrays["lo"], arrays["hi"])


def segment_stats(segmentation: Segmentation, stats: Stats) -> Stats:
    """Fragment statistics grouped by segment (through the mapping)."""
    rows = segmentation.ws.db.execute(
        "select fragment, segment from fragments where dataset_id = ? and fragment != segment",
        [segmentation.id],
    ).fetchall()
    keys = stats.ids.copy()
    if rows:
        moved = np.array(rows, np.uint64)
        order = np.argsort(moved[:, 0])
        moved = moved[order]
        at = np.clip(np.searchsorted(moved[:, 0], keys), 0, len(moved) - 1)
        hit = moved[at, 0] == keys
        keys[hit] = moved[at[hit], 1]
    grouped = stats.grouped(keys)
    return drop_empty(grouped)


def object_table(ws: Workspace, dataset_id: str) -> list[dict[str, Any]]:
    """Per segment: id, name, colour (if stored), voxels, volume (nm³), surface_area (nm²,
    of the cached lod-0 mesh, else None), centroid (nm, x y z, voxel centres at (i + ½) ·
    size), box ([z0, y0, x0, z1, y1, x1] in voxels, half-open like `Box`). Sorted by id."""
    segmentation = open_segmentation(ws, dataset_id)
    cache = MeshCache(ws, segmentation.dataset)
    stats = segment_stats(segmentation, fragment_stats(segmentation, cache))
    size = np.array(segmentation.voxel_size, np.float64)
    voxel_volume = float(np.prod(size))
    names = segment_names(ws.db, dataset_id)
    colours = stored_colours(ws, dataset_id)
    versions = segment_versions(ws, dataset_id)
    areas = cache.surface_areas({s: versions.get(s, 0) for s in stats.ids.tolist()})
    centroids = (stats.sums / stats.counts[:, None] + 0.5) * size
    table = []
    for row, segment in enumerate(stats.ids.tolist()):
        table.append(
            {
                "id": segment,
                "name": names.get(segment),
                "colour": colours.get(segment),
                "voxels": int(stats.counts[row]),
                "volume": int(stats.counts[row]) * voxel_volume,
                "surface_area": areas.get(segment),
                "centroid": centroids[row, ::-1].tolist(),
                "box": [*stats.lo[row].tolist(), *stats.hi[row].tolist()],
            }
        )
    return table


def stored_colours(ws: Workspace, dataset_id: str) -> dict[int, str]:
    """Colours users chose (the 3D annotator's `segments.colour` column), if it exists."""
    if "colour" not in ws.db["segments"].columns_dict:
        return {}
    rows = ws.db.execute(
        "select segment, colour from segments where dataset_id = ? and colour is not null",
        [dataset_id],
    ).fetchall()
    return {int(s): str(c) for s, c in rows}
