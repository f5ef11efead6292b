"""The fragment → segment mapping and the per-fragment index (voxel count, bounding box).

Voxels hold fragment ids; the `fragments` table maps each to a segment. A merge changes
rows here only, so it costs the same for segments of 10³ or 10⁹ voxels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlite_utils import Database

from unem.progress import Progress, no_progress
from unem.proofread.voxels import Box
from unem.volumes.datasets import Layer
from unem.volumes.store import open_level


@dataclass
class FragmentStats:
    voxels: int
    box: Box

    def add(self, voxels: int, box: Box) -> None:
        self.voxels += voxels
        self.box = self.box.union(box)


def slice_stats(labels: np.ndarray, z: int) -> dict[int, FragmentStats]:
    """Voxel count and bounding box of every non-zero id in one slice."""
    from scipy import ndimage  # here, not at the top: the server starts faster

    ids, dense, counts = np.unique(labels, return_inverse=True, return_counts=True)
    boxes = ndimage.find_objects(dense.reshape(labels.shape) + 1)
    stats = {}
    for index, fragment in enumerate(ids.tolist()):
        if fragment == 0 or boxes[index] is None:
            continue
        ys, xs = boxes[index]
        stats[fragment] = FragmentStats(int(counts[index]),
                                        Box(z, ys.start, xs.start, z + 1, ys.stop, xs.stop))
    return stats


def scan_fragments(layer: Layer, progress: Progress = no_progress) -> dict[int, FragmentStats]:
    """Count and box every fragment of a label layer, slice by slice (bounded memory)."""
    array = open_level(layer.path)
    totals: dict[int, FragmentStats] = {}
    depth = layer.shape[0]
    for z in range(depth):
        add_slice(totals, np.asarray(array[z]), z)
        progress(z + 1, depth, "indexing segmentation")
    return totals


def add_slice(totals: dict[int, FragmentStats], labels: np.ndarray, z: int) -> None:
    """Count and box the fragments of slice `z` into `totals`."""
    for fragment, stats in slice_stats(labels, z).items():
        if fragment in totals:
            totals[fragment].add(stats.voxels, stats.box)
        else:
            totals[fragment] = stats


def is_indexed(db: Database, dataset_id: str) -> bool:
    return bool(list(db["proofread_state"].rows_where("dataset_id = ?", [dataset_id])))


def build_index(db: Database, dataset_id: str, layer: Layer,
                progress: Progress = no_progress) -> None:
    """Fill the fragments table of a dataset (identity mapping) and its id counter."""
    write_index(db, dataset_id, scan_fragments(layer, progress))


def write_index(db: Database, dataset_id: str, totals: Mapping[int, FragmentStats]) -> None:
    """Replace a dataset's fragment rows (identity mapping) and id counter by `totals`."""
    rows = ({"dataset_id": dataset_id, "fragment": f, "segment": f, "voxels": s.voxels,
             **dict(zip(("z0", "y0", "x0", "z1", "y1", "x1"), s.box.to_json(), strict=True))}
            for f, s in totals.items())
    with db.atomic():
        db.table("fragments").delete_where("dataset_id = ?", [dataset_id])
        db.table("fragments").insert_all(rows, batch_size=5000)
        db.table("proofread_state").insert(
            {"dataset_id": dataset_id, "next_id": max(totals, default=0) + 1,
             "indexed_at": datetime.now(UTC).isoformat(timespec="seconds")},
            replace=True,
        )


def segments_of(db: Database, dataset_id: str, fragments: Iterable[int]) -> dict[int, int]:
    """The segment of each fragment; fragments without a row (0, unknown) map to themselves."""
    wanted = sorted({int(f) for f in fragments})
    found: dict[int, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(db.execute(
            "select fragment, segment from fragments where dataset_id = ? "
            f"and fragment in ({marks})", [dataset_id, *chunk]).fetchall())
    return {f: found.get(f, f) for f in wanted}


def fragments_of(db: Database, dataset_id: str, segment: int) -> list[int]:
    rows = db.execute("select fragment from fragments where dataset_id = ? and segment = ?",
                      [dataset_id, segment]).fetchall()
    return [int(r[0]) for r in rows]


def non_identity_mapping(db: Database, dataset_id: str) -> dict[int, int]:
    """The mapping entries a client needs: fragments whose segment is not their own id."""
    rows = db.execute("select fragment, segment from fragments where dataset_id = ? "
                      "and fragment != segment", [dataset_id]).fetchall()
    return {int(f): int(s) for f, s in rows}


def segment_box(db: Database, dataset_id: str, segment: int) -> Box | None:
    row = db.execute("select min(z0), min(y0), min(x0), max(z1), max(y1), max(x1), "
                     "sum(voxels) from fragments where dataset_id = ? and segment = ?",
                     [dataset_id, segment]).fetchone()
    if row is None or row[0] is None:
        return None
    return Box.from_json(row[:6])


def segment_voxels(db: Database, dataset_id: str, segment: int) -> int:
    row = db.execute("select coalesce(sum(voxels), 0) from fragments where dataset_id = ? "
                     "and segment = ?", [dataset_id, segment]).fetchone()
    return int(row[0])


def set_segments(db: Database, dataset_id: str, mapping: Mapping[int, int]) -> None:
    """Point fragments at new segments (rows must exist: see ensure_fragments)."""
    db.conn.executemany(
        "update fragments set segment = ? where dataset_id = ? and fragment = ?",
        [(segment, dataset_id, fragment) for fragment, segment in mapping.items()],
    )


def ensure_fragments(db: Database, dataset_id: str, fragments: Mapping[int, int]) -> None:
    """Create rows for new fragment ids (mapped to the given segments), zero voxels."""
    db.conn.executemany(
        "insert or ignore into fragments (dataset_id, fragment, segment, voxels, "
        "z0, y0, x0, z1, y1, x1) values (?, ?, ?, 0, 0, 0, 0, 0, 0, 0)",
        [(dataset_id, f, s) for f, s in fragments.items() if f != 0],
    )


def apply_counts(db: Database, dataset_id: str, deltas: Mapping[int, int], box: Box) -> None:
    """Add voxel count deltas; grow the boxes of fragments that gained voxels."""
    gained = [(d, dataset_id, f) for f, d in deltas.items() if f != 0]
    db.conn.executemany(
        "update fragments set voxels = voxels + ? where dataset_id = ? and fragment = ?", gained)
    grow = [(*box.to_json(), dataset_id, f) for f, d in deltas.items() if f != 0 and d > 0]
    db.conn.executemany(
        "update fragments set "
        "z0 = case when voxels = ? then ? else min(z0, ?) end, "
        "y0 = case when voxels = ? then ? else min(y0, ?) end, "
        "x0 = case when voxels = ? then ? else min(x0, ?) end, "
        "z1 = max(z1, ?), y1 = max(y1, ?), x1 = max(x1, ?) "
        "where dataset_id = ? and fragment = ?",
        [_grow_args(row, deltas) for row in grow],
    )


def _grow_args(row: tuple[object, ...], deltas: Mapping[int, int]) -> tuple[object, ...]:
    z0, y0, x0, z1, y1, x1, dataset_id, fragment = row
    fresh = deltas[fragment]  # type: ignore[index]
    # A fragment whose count equals this edit's gain was empty before: its box is this box.
    return (fresh, z0, z0, fresh, y0, y0, fresh, x0, x0, z1, y1, x1, dataset_id, fragment)


def reserve_ids(db: Database, dataset_id: str, count: int = 1) -> list[int]:
    """Fresh ids never used in this dataset (as fragment or segment)."""
    row = db.execute("select next_id from proofread_state where dataset_id = ?",
                     [dataset_id]).fetchone()
    first = int(row[0])
    db.execute("update proofread_state set next_id = ? where dataset_id = ?",
               [first + count, dataset_id])
    return list(range(first, first + count))
