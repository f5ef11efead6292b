"""The workspace database: SQLite in WAL mode through sqlite-utils, schema as migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("unem")


def open_database(path: Path, migrate: bool = True) -> Database:
    """Open (creating if needed) the database at `path`, migrated to the current schema
    unless `migrate` is false (a connection of a workspace that migrated already)."""
    # check_same_thread=False: each thread opens its own connection (see Workspace.db), but
    # Flask-SocketIO may hand a connection's last use to another thread at shutdown.
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed edit survives a power cut too, not only a killed process.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    db = Database(conn)
    if migrate:
        MIGRATIONS.apply(db)
    return db


@MIGRATIONS()
def m001_datasets_layers_users(db: Database) -> None:
    db.table("datasets").create(
        {
            "id": str,  # slug, immutable: the folder name under volumes/
            "name": str,
            "shape": str,  # JSON [z, y, x]
            "voxel_size": str,  # JSON [z, y, x] in nm
            "source": str,
            "created_at": str,
            "created_by": str,
        },
        pk="id",
    )
    db.table("layers").create(
        {
            "dataset_id": str,
            "name": str,
            "kind": str,  # image | segmentation | prediction | groundtruth
            "dtype": str,
            "levels": str,  # JSON [{"path": "0", "shape": [...], "scale": [z, y, x]}, ...]
            "source": str,
            "created_at": str,
        },
        pk=("dataset_id", "name"),
        foreign_keys=[("dataset_id", "datasets", "id")],
    )
    db.table("users").create(
        {
            "id": int,
            "name": str,
            "role": str,
            "password_hash": str,
            "created_at": str,
        },
        pk="id",
        not_null={"name", "role"},
    )
    db.table("users").create_index(["name"], unique=True)


@MIGRATIONS()
def m002_proofreading(db: Database) -> None:
    from unem.proofread.schema import create_proofreading_tables

    create_proofreading_tables(db)


@MIGRATIONS()
def m003_dataset_size(db: Database) -> None:
    """The size on disk, measured once at import, so listing never walks the chunks."""
    db.table("datasets").add_column("size_bytes", int)


@MIGRATIONS()
def m004_jobs(db: Database) -> None:
    """Jobs (unem.jobs.table): state, progress, outcome, and the worker to find again."""
    db.table("jobs").create(
        {
            "id": int,
            "kind": str,
            "title": str,
            "options": str,  # JSON, as the kind's schema validated it
            "resource": str,  # accelerator | cpu
            "resumable": int,
            "state": str,  # queued | running | done | failed | cancelled | interrupted
            "user": str,
            "created_at": str,
            "started_at": str,
            "finished_at": str,
            "step": int,
            "total": int,
            "message": str,
            "metrics": str,  # JSON {name: number}
            "eta_seconds": float,
            "exit_code": int,
            "error": str,
            "last_lines": str,  # JSON [line, ...]: the log's end when the worker failed
            "result": str,  # JSON
            "attempts": int,
            "cancel_requested": int,
            "pid": int,
            "pid_started": float,  # the worker's start time: its pid alone may be reused
            "log_path": str,  # relative to the workspace
        },
        pk="id",
        not_null={"kind", "state", "user", "created_at"},
        defaults={"step": 0, "total": 0, "attempts": 0, "cancel_requested": 0, "resumable": 0},
    )
    db.table("jobs").create_index(["state"])


@MIGRATIONS()
def m005_annotator_markers(db: Database) -> None:
    """The 3D annotator: marker points on objects, and a colour per segment (unem.annotations)."""
    db.table("markers").create(
        {
            "id": int,
            "dataset_id": str,
            "segment": int,  # the parent object (0: none)
            "name": str,
            "x": float,  # position in nm, like every coordinate of the 3D annotator
            "y": float,
            "z": float,
            "radius": float,  # nm
            "colour": str,  # "#rrggbb"
            "user": str,
            "created_at": str,
        },
        pk="id",
        not_null={"dataset_id", "x", "y", "z"},
    )
    db.table("markers").create_index(["dataset_id"])
    # Names are the segments' own (Dojo's): a colour joins them, so a segment looks the same
    # to everyone viewing the dataset.
    db.table("segments").add_column("colour", str)


@MIGRATIONS()
def m006_evaluations(db: Database) -> None:
    """Evaluation reports (unem.evaluation_reports): scores against ground truth."""
    db.table("evaluations").create(
        {
            "id": int,
            "dataset_id": str,  # of the segmentation; no foreign key: a report outlives it
            "segmentation": str,
            "groundtruth_dataset": str,
            "groundtruth": str,
            "mode": str,  # instance | semantic
            "options": str,  # JSON, the evaluate job's options
            "voxels": int,
            "objects": int,
            "segments": int,
            "scores": str,  # JSON {name: value}
            "per_slice": str,  # JSON {column: [value per slice]}
            "offenders": str,  # JSON {most_split: [...], most_merged: [...]} or null
            "versions": str,  # JSON {dataset: edit version scored}
            "seconds": float,
            "user": str,
            "job_id": int,
            "created_at": str,
        },
        pk="id",
        not_null={"dataset_id", "segmentation", "groundtruth", "mode", "created_at"},
    )
    db.table("evaluations").create_index(["dataset_id"])
