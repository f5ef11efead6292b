"""Tables of proofreading: fragments→segments mapping, segment rows, the edit log, marks.

Registered as a migration in `unem.db` (every schema change is a migration).
"""

from __future__ import annotations

from sqlite_utils import Database


def create_proofreading_tables(db: Database) -> None:
    db.table("fragments").create(
        {"dataset_id": str, "fragment": int, "segment": int, "voxels": int,
         "z0": int, "y0": int, "x0": int, "z1": int, "y1": int, "x1": int},
        pk=("dataset_id", "fragment"),
    )
    db.table("fragments").create_index(["dataset_id", "segment"])
    db.table("segments").create(
        {"dataset_id": str, "segment": int, "name": str, "notes": str, "locked_by": str,
         "locked_at": str, "last_editor": str, "last_version": int},
        pk=("dataset_id", "segment"),
    )
    db.table("edits").create(
        {"dataset_id": str, "version": int, "user": str, "time": str, "kind": str,
         "txid": str, "payload": str, "mapping": str, "patch": bytes, "box": str,
         "segments": str, "applied": int, "undo_of": int, "undone_by": int, "redone_by": int},
        pk=("dataset_id", "version"),
    )
    db.table("edits").create_index(["dataset_id", "txid"], unique=True)
    db.table("edits").create_index(["dataset_id", "user", "version"])
    db.table("proofread_state").create(
        {"dataset_id": str, "next_id": int, "indexed_at": str}, pk="dataset_id"
    )
    db.table("marks").create(
        {"id": int, "dataset_id": str, "z": int, "y": int, "x": int, "note": str,
         "user": str, "created_at": str, "resolved": int},
        pk="id",
    )
    db.table("marks").create_index(["dataset_id"])
