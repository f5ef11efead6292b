"""Problem marks (bookmarks with a note) shared by everyone proofreading a dataset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from unem.errors import BadInput, NotFound

MAX_NOTE = 2000


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "z": row["z"], "y": row["y"], "x": row["x"], "note": row["note"],
            "user": row["user"], "created_at": row["created_at"],
            "resolved": bool(row["resolved"])}


def list_marks(db: Database, dataset_id: str) -> list[dict[str, Any]]:
    rows = db.table("marks").rows_where("dataset_id = ?", [dataset_id], order_by="id")
    return [_row(r) for r in rows]


def add_mark(db: Database, dataset_id: str, user: str, z: int, y: int, x: int,
             note: str) -> dict[str, Any]:
    if len(note) > MAX_NOTE:
        raise BadInput(f"A note has at most {MAX_NOTE} characters.")
    row = {"dataset_id": dataset_id, "z": int(z), "y": int(y), "x": int(x), "note": note,
           "user": user, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "resolved": 0}
    mark_id = db.table("marks").insert(row).last_pk
    return _row({**row, "id": mark_id})


def _get(db: Database, dataset_id: str, mark_id: int) -> dict[str, Any]:
    rows = list(db.table("marks").rows_where("dataset_id = ? and id = ?", [dataset_id, mark_id]))
    if not rows:
        raise NotFound(f"No mark {mark_id}.")
    return rows[0]


def update_mark(db: Database, dataset_id: str, mark_id: int, *, note: str | None = None,
                resolved: bool | None = None) -> dict[str, Any]:
    _get(db, dataset_id, mark_id)
    changes: dict[str, Any] = {}
    if note is not None:
        if len(note) > MAX_NOTE:
            raise BadInput(f"A note has at most {MAX_NOTE} characters.")
        changes["note"] = note
    if resolved is not None:
        changes["resolved"] = int(resolved)
    if changes:
        db.table("marks").update(mark_id, changes)
    return _row(_get(db, dataset_id, mark_id))


def delete_mark(db: Database, dataset_id: str, mark_id: int) -> None:
    _get(db, dataset_id, mark_id)
    db.table("marks").delete(mark_id)
