"""Segment rows (names, notes, lock, last editor) and the segment table of the proofreader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from unem.errors import BadInput, NotFound
from unem.proofread.mapping import segment_box

SORT_COLUMNS = {"id": "segment", "voxels": "voxels", "name": "name", "editor": "last_editor"}
MAX_NAME = 200


@dataclass(frozen=True)
class SegmentRow:
    segment: int
    voxels: int
    name: str | None
    locked_by: str | None
    last_editor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.segment, "voxels": self.voxels, "name": self.name,
                "locked_by": self.locked_by, "last_editor": self.last_editor}


def segment_table(db: Database, dataset_id: str, search: str = "", sort: str = "voxels",
                  descending: bool = True, limit: int = 200, offset: int = 0
                  ) -> tuple[list[SegmentRow], int]:
    """Segments with their voxel counts, filtered by id or name, sorted; and the total count."""
    if sort not in SORT_COLUMNS:
        raise BadInput(f"Sort by one of {', '.join(SORT_COLUMNS)}.")
    where, args = "f.segment != 0 and f.voxels > 0", [dataset_id]
    if search:
        where += " and (cast(f.segment as text) like ? or s.name like ?)"
        args += [f"{search}%", f"%{search}%"]
    base = ("from (select dataset_id, segment, sum(voxels) as voxels from fragments "
            "where dataset_id = ? group by dataset_id, segment) f left join segments s "
            f"on s.dataset_id = f.dataset_id and s.segment = f.segment where {where}")
    order = f"{SORT_COLUMNS[sort]} {'desc' if descending else 'asc'}, f.segment"
    rows = db.execute(f"select f.segment, f.voxels, s.name, s.locked_by, s.last_editor {base} "
                      f"order by {order} limit ? offset ?", [*args, limit, offset]).fetchall()
    total = db.execute(f"select count(*) {base}", args).fetchone()[0]
    return [SegmentRow(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows], int(total)


def segment_info(db: Database, dataset_id: str, segment: int) -> dict[str, Any]:
    """Where a segment is (box, centre), its size, name and lock: for "jump to segment"."""
    box = segment_box(db, dataset_id, segment)
    if box is None:
        raise NotFound(f"Segment {segment} does not exist.")
    rows, _ = segment_table(db, dataset_id, search=str(segment), limit=50)
    row = next((r for r in rows if r.segment == segment), None)
    centre = [(a + b - 1) // 2 for a, b in zip(box.to_json()[:3], box.to_json()[3:], strict=True)]
    return {**(row.to_json() if row else {"id": segment}), "box": box.to_json(), "centre": centre}


def rename_segment(db: Database, dataset_id: str, segment: int, name: str) -> str:
    name = name.strip()
    if len(name) > MAX_NAME:
        raise BadInput(f"A segment name has at most {MAX_NAME} characters.")
    if segment <= 0:
        raise BadInput("Only segments (id > 0) have names.")
    db.execute("insert into segments (dataset_id, segment, name) values (?, ?, ?) "
               "on conflict (dataset_id, segment) do update set name = excluded.name",
               [dataset_id, segment, name or None])
    return name


def segment_names(db: Database, dataset_id: str) -> dict[int, str]:
    rows = db.execute("select segment, name from segments where dataset_id = ? and name is not "
                      "null", [dataset_id]).fetchall()
    return {int(s): str(n) for s, n in rows}
