"""Which edit version each segment's surface reflects, read from the proofreading tables.

Every committed edit stores the segments it touched (`edits.segments`: for a merge both
segments, for a split the old and the new one, for paint/erase/fill every segment whose
voxels changed) and sets `segments.last_version` of each in the same transaction. So the
version of the last edit that touched segment S is one indexed row: no log replay.

A segment no edit has touched reflects the volume as it was imported, or as the last
`replace` edit wrote it (replacing the segmentation resets the segment rows): its version
is that edit's version, 0 if none. It is NOT the dataset's current version, which would
make every edit invalidate every mesh.
"""

from __future__ import annotations

import json
import time
from typing import Any

from unem.proofread.edits import REPLACE_KIND

SETTLE_SECONDS = 5.0  # how long to wait for a committed edit's voxels to be written


def replaced_at(db: Any, dataset_id: str) -> int:
    """The version of the last `replace` edit (the volume as it now stands), 0 if none."""
    row = db.execute(
        "select max(version) from edits where dataset_id = ? and kind = ?",
        [dataset_id, REPLACE_KIND],
    ).fetchone()
    return int(row[0] or 0)


def dataset_version(db: Any, dataset_id: str) -> int:
    row = db.execute("select max(version) from edits where dataset_id = ?", [dataset_id]).fetchone()
    return int(row[0] or 0)


def segment_versions(ws: Any, dataset_id: str) -> dict[int, int]:
    """Every segment (with voxels) → the version of the last edit that touched it."""
    base = replaced_at(ws.db, dataset_id)
    rows = ws.db.execute(
        "select f.segment, coalesce(s.last_version, 0) from (select segment from fragments "
        "where dataset_id = ? and voxels > 0 and segment != 0 group by segment) f left join "
        "segments s on s.dataset_id = ? and s.segment = f.segment",
        [dataset_id, dataset_id],
    ).fetchall()
    return {int(s): max(int(v), base) for s, v in rows}


def segment_version(ws: Any, dataset_id: str, segment: int) -> int:
    """The version of the last edit that touched `segment` (see the module docstring)."""
    row = ws.db.execute(
        "select last_version from segments where dataset_id = ? and segment = ?",
        [dataset_id, segment],
    ).fetchone()
    touched = int(row[0]) if row is not None and row[0] is not None else 0
    return max(touched, replaced_at(ws.db, dataset_id))


def touched_segments(ws: Any, dataset_id: str, since_version: int) -> set[int]:
    """Segments changed by edits after `since_version`, including segments that no longer
    exist (merged away); every current segment if the segmentation was replaced since."""
    rows = ws.db.execute(
        "select kind, segments from edits where dataset_id = ? and version > ?",
        [dataset_id, since_version],
    ).fetchall()
    if any(kind == REPLACE_KIND for kind, _ in rows):
        return set(segment_versions(ws, dataset_id))
    return {int(s) for _, segments in rows for s in json.loads(segments or "[]")}


def voxel_version(db: Any, dataset_id: str) -> int:
    """The version of the last edit that rewrote voxels (merges and splits of fragments
    change only the mapping), 0 if none."""
    row = db.execute(
        "select max(version) from edits where dataset_id = ? and (patch is not null or kind = ?)",
        [dataset_id, REPLACE_KIND],
    ).fetchone()
    return int(row[0] or 0)


def wait_until_settled(db: Any, dataset_id: str, seconds: float = SETTLE_SECONDS) -> bool:
    """Whether every committed edit's voxels are in the store, waiting up to `seconds`.

    The server commits an edit, then writes its voxels: a mesh read in between would show
    the old voxels under the new version. Callers do not cache what they read unsettled.
    """
    deadline = time.monotonic() + seconds
    while True:
        row = db.execute(
            "select count(*) from edits where dataset_id = ? and applied = 0", [dataset_id]
        ).fetchone()
        if not row[0]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
