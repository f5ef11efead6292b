"""Replace a dataset's whole segmentation (e.g. by a segmented prediction), losing nothing.

- The segmentation being replaced is kept as a new layer `segmentation-before-<UTC time>`
  (kind segmentation) as the proofreaders left it, i.e. with the fragment → segment mapping
  applied, so it stays usable as training labels and for comparison.
- The dataset's proofreading state (edit log, mapping, segment names and locks) is archived
  beside it in `<kept layer>.proofreading.sqlite`, then reset. Marks stay: they point at
  places in the volume, not at segments.
- The new volume's fragment index is built while it is written, so Dojo opens it at once.
- One edit of kind `replace` is appended to the log: versions keep increasing, so clients
  and tile ETags see a new version, and Dojo reloads its state when it gets that edit.

Everything is written aside first; the rows and the folders are swapped in one transaction,
as an import does. A lock held by anyone refuses the replacement with the owner's name.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from unem.errors import BadInput, Conflict
from unem.progress import Progress, no_progress
from unem.proofread import mapping as fragments
from unem.proofread.edits import EDIT_LAYER, REPLACE_KIND, now, proofreader, write_transaction
from unem.volumes.datasets import Dataset, Layer, disk_usage, get_dataset
from unem.volumes.export import layer_slices
from unem.volumes.store import Level, PyramidWriter
from unem.workspace import Workspace

ARCHIVED_TABLES = ("edits", "fragments", "segments", "proofread_state")
SETTLE_SECONDS = 30.0  # how long to wait for the server to write an edit's voxels
ATTEMPTS = 3  # edits committed while the kept copy is written: write it again, this often
MAX_ID = 2**32 - 1


@dataclass(frozen=True)
class Replacement:
    """What a replacement did."""

    dataset_id: str
    version: int  # of the `replace` edit
    kept: str  # the layer holding the segmentation as it was
    archive: str  # the file (in the dataset's folder) holding the proofreading state as it was
    fragments: int  # in the new segmentation

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset_id,
            "version": self.version,
            "kept": self.kept,
            "archive": self.archive,
            "fragments": self.fragments,
        }


@dataclass(frozen=True)
class Written:
    """A volume written aside: its folder, pyramid levels and dtype."""

    path: Path
    levels: list[Level]
    dtype: str


class _Edited(Exception):
    """The dataset was edited after the kept copy was written: write it again."""


def replace_segmentation(
    ws: Workspace,
    dataset_id: str,
    planes: Iterable[np.ndarray],
    source: str,
    user: str = "admin",
    progress: Progress = no_progress,
) -> Replacement:
    """Make `planes` (one uint32-compatible slice per z, in order) the dataset's segmentation.

    `source` says where they come from (stored with the layer and in the `replace` edit).
    Refused (Conflict, nothing changed) while anyone holds a lock on a segment.
    """
    dataset = get_dataset(ws, dataset_id)
    dataset.layer(EDIT_LAYER)
    refuse_locked(ws.db, dataset_id)
    tmp = ws.new_tmp_dir()
    try:
        new, totals = write_new(tmp / "new.zarr", dataset, planes, progress)
        for attempt in range(ATTEMPTS):
            try:
                return _keep_and_swap(
                    ws, dataset, new, totals, source, user, tmp / str(attempt), progress
                )
            except _Edited:
                continue
        raise Conflict(
            f"Dataset {dataset_id!r} kept being edited while its segmentation was "
            "being replaced; nothing was changed. Try again when it is quieter."
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def refuse_locked(db: Database, dataset_id: str) -> None:
    """Conflict naming the owners if any segment of the dataset is locked."""
    rows = db.execute(
        "select segment, locked_by from segments where dataset_id = ? and "
        "locked_by is not null order by segment",
        [dataset_id],
    ).fetchall()
    if not rows:
        return
    owners = ", ".join(sorted({str(u) for _, u in rows}))
    which = ", ".join(str(s) for s, _ in rows[:5]) + (", …" if len(rows) > 5 else "")
    plural = "s" if len(rows) > 1 else ""
    raise Conflict(
        f"Segment{plural} {which} of {dataset_id} {'are' if plural else 'is'} locked by "
        f"{owners}: the segmentation cannot be replaced until {'they are' if plural else 'it is'}"
        " unlocked in Dojo (by the owner or an admin).",
        {"locked": {str(s): u for s, u in rows}},
    )


def write_new(
    path: Path, dataset: Dataset, planes: Iterable[np.ndarray], progress: Progress
) -> tuple[Written, dict[int, fragments.FragmentStats]]:
    """Write the new segmentation's pyramid at `path`, indexing its fragments on the way."""
    depth = dataset.shape[0]
    totals: dict[int, fragments.FragmentStats] = {}
    z = 0
    with PyramidWriter(path, dataset.shape, "uint32", "segmentation", dataset.voxel_size) as writer:
        for plane in planes:
            if z >= depth:
                raise BadInput(f"More slices than the dataset's {depth}.")
            ids = as_ids(plane, dataset.shape[1:], z)
            writer.write(ids)
            fragments.add_slice(totals, ids, z)
            z += 1
            progress(z, depth, "writing the new segmentation")
        if z != depth:
            raise BadInput(f"{z} slices for a dataset of {depth}.")
    return Written(path, writer.levels, "uint32"), totals


def as_ids(plane: np.ndarray, shape: tuple[int, ...], z: int) -> np.ndarray:
    """One slice as uint32 ids, or BadInput if it cannot be one."""
    plane = np.asarray(plane)
    if plane.shape != tuple(shape):
        raise BadInput(f"Slice {z} is {plane.shape}, the dataset's slices are {tuple(shape)}.")
    if not (np.issubdtype(plane.dtype, np.integer) or plane.dtype == bool):
        raise BadInput(f"Slice {z}: ids must be integers, not {plane.dtype}.")
    if plane.size and (int(plane.min()) < 0 or int(plane.max()) > MAX_ID):
        raise BadInput(f"Slice {z}: ids must lie in 0..{MAX_ID}.")
    return plane.astype(np.uint32)


def _keep_and_swap(
    ws: Workspace,
    dataset: Dataset,
    new: Written,
    totals: dict[int, fragments.FragmentStats],
    source: str,
    user: str,
    work: Path,
    progress: Progress,
) -> Replacement:
    """Keep the current segmentation (a copy with the mapping applied if it has merges, the
    volume itself otherwise), then swap; _Edited if someone edited meanwhile."""
    work.mkdir()
    seen = settled_version(ws, dataset.id)
    old = get_dataset(ws, dataset.id).layer(EDIT_LAYER)
    relabel = fragments.non_identity_mapping(ws.db, dataset.id)
    copy = write_copy(old, relabel, work / "kept.zarr", dataset, progress) if relabel else None
    return swap(ws, dataset, old, new, copy, totals, seen, source, user, work)


def log_state(db: Database, dataset_id: str) -> tuple[int, int]:
    """The dataset's version and how many committed edits still have voxels to write."""
    row = db.execute(
        "select coalesce(max(version), 0), coalesce(sum(applied = 0), 0) "
        "from edits where dataset_id = ?",
        [dataset_id],
    ).fetchone()
    return int(row[0]), int(row[1])


def settled_version(ws: Workspace, dataset_id: str) -> int:
    """The current version once every committed edit's voxels are written.

    The server writes an edit's voxels right after committing it; if they are still not
    written after SETTLE_SECONDS, the server stopped meanwhile: replay them here.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        version, unapplied = log_state(ws.db, dataset_id)
        if not unapplied:
            return version
        if time.monotonic() > deadline:
            proofreader(ws, dataset_id).replay_unapplied()
        else:
            time.sleep(0.1)


def write_copy(
    old: Layer, relabel: dict[int, int], path: Path, dataset: Dataset, progress: Progress
) -> Written:
    """The segmentation as proofread (`relabel`, the mapping, applied), written at `path`."""
    depth = dataset.shape[0]
    with PyramidWriter(
        path, dataset.shape, old.dtype, "segmentation", dataset.voxel_size
    ) as writer:
        for z, plane in enumerate(layer_slices(old, relabel)):
            writer.write(plane)
            progress(z + 1, depth, "keeping the proofread segmentation")
    return Written(path, writer.levels, old.dtype)


def kept_name(ws: Workspace, dataset_id: str) -> str:
    """`segmentation-before-<UTC time>`, made unique among the dataset's layers."""
    base = f"segmentation-before-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    taken = set(get_dataset(ws, dataset_id).layers)
    name, n = base, 2
    while name in taken or (ws.dataset_dir(dataset_id) / f"{name}.zarr").exists():
        name, n = f"{base}-{n}", n + 1
    return name


def swap(
    ws: Workspace,
    dataset: Dataset,
    old: Layer,
    new: Written,
    copy: Written | None,
    totals: dict[int, fragments.FragmentStats],
    seen: int,
    source: str,
    user: str,
    work: Path,
) -> Replacement:
    """In one transaction: archive and reset the proofreading rows, index the new volume,
    log the `replace` edit, record both layers, and move the folders into place (last: a
    failed move rolls the rows back, and the moves done are undone)."""
    db, folder = ws.db, ws.dataset_dir(dataset.id)
    done: list[tuple[Path, Path]] = []
    grow = disk_usage(new.path)  # measured before taking the database's write lock
    if copy is not None:
        grow += disk_usage(copy.path) - disk_usage(old.path)
    try:
        with write_transaction(db):
            if log_state(db, dataset.id) != (seen, 0):
                raise _Edited
            refuse_locked(db, dataset.id)
            kept = kept_name(ws, dataset.id)
            archive = work / f"{kept}.proofreading.sqlite"
            archive_state(db, dataset.id, archive)
            reset_state(db, dataset.id)
            fragments.write_index(db, dataset.id, totals)
            version = seen + 1
            insert_replace_edit(
                db,
                dataset,
                version,
                user,
                {"kept": kept, "archive": archive.name, "source": source, "fragments": len(totals)},
            )
            record_layers(db, dataset, old, new, copy, kept, source)
            db.execute(
                "UPDATE datasets SET size_bytes = coalesce(size_bytes, 0) + ? WHERE id = ?",
                [grow + archive.stat().st_size, dataset.id],
            )
            move_all(planned_moves(folder / f"{kept}.zarr", old, new, copy, archive), done)
    except BaseException:
        for moved_from, moved_to in reversed(done):
            moved_to.rename(moved_from)
        raise
    return Replacement(dataset.id, version, kept, archive.name, len(totals))


def archive_state(db: Database, dataset_id: str, path: Path) -> None:
    """Copy the dataset's proofreading rows into a new SQLite file at `path`, in tables made
    like the workspace's (whatever columns later migrations added)."""
    archive = Database(path)
    try:
        for table in ARCHIVED_TABLES:
            row = db.execute(
                "select sql from sqlite_master where type = 'table' and name = ?", [table]
            ).fetchone()
            archive.execute(row[0])
            rows = db[table].rows_where("dataset_id = ?", [dataset_id])
            archive.table(table).insert_all(rows, batch_size=500)
    finally:
        archive.conn.close()


def reset_state(db: Database, dataset_id: str) -> None:
    for table in ARCHIVED_TABLES:
        db.table(table).delete_where("dataset_id = ?", [dataset_id])


def insert_replace_edit(
    db: Database, dataset: Dataset, version: int, user: str, payload: dict[str, Any]
) -> None:
    """The log's `replace` edit: no mapping, no patch, the whole volume as its box."""
    db.table("edits").insert(
        {
            "dataset_id": dataset.id,
            "version": version,
            "user": user,
            "time": now(),
            "kind": REPLACE_KIND,
            "txid": None,
            "payload": json.dumps(payload),
            "mapping": "[]",
            "patch": None,
            "box": json.dumps([0, 0, 0, *dataset.shape]),
            "segments": "[]",
            "applied": 1,
            "undo_of": None,
            "undone_by": None,
            "redone_by": None,
        }
    )


def record_layers(
    db: Database,
    dataset: Dataset,
    old: Layer,
    new: Written,
    copy: Written | None,
    kept: str,
    source: str,
) -> None:
    """The kept layer's row, and the segmentation's row pointing at the new volume. The
    time has milliseconds: it is what tells every process the volume changed."""
    stamp = now()
    row = db.execute(
        "select source from layers where dataset_id = ? and name = ?", [dataset.id, EDIT_LAYER]
    ).fetchone()
    levels = copy.levels if copy is not None else list(old.levels)
    db.table("layers").insert(
        {
            "dataset_id": dataset.id,
            "name": kept,
            "kind": "segmentation",
            "dtype": copy.dtype if copy is not None else old.dtype,
            "levels": json.dumps([level.to_json() for level in levels]),
            "source": f"the segmentation until {stamp} ({row[0] if row else 'unknown'})",
            "created_at": stamp,
        }
    )
    db.table("layers").update(
        (dataset.id, EDIT_LAYER),
        {
            "dtype": new.dtype,
            "levels": json.dumps([level.to_json() for level in new.levels]),
            "source": source,
            "created_at": stamp,
        },
    )


def planned_moves(
    kept: Path, old: Layer, new: Written, copy: Written | None, archive: Path
) -> list[tuple[Path, Path]]:
    """The renames of a swap: the old volume becomes the kept layer (or goes, when a copy
    with the mapping applied is kept instead), the new one takes its place."""
    moves = [
        (old.path, kept if copy is None else archive.parent / "old.zarr"),
        (new.path, old.path),
        (archive, kept.parent / archive.name),
    ]
    if copy is not None:
        moves.append((copy.path, kept))
    return moves


def move_all(moves: list[tuple[Path, Path]], done: list[tuple[Path, Path]]) -> None:
    """Rename each (from, to), never over an existing path; `done` lists those made."""
    for moved_from, moved_to in moves:
        if moved_to.exists():
            raise Conflict(f"{moved_to} exists already; nothing was changed.")
        moved_from.rename(moved_to)
        done.append((moved_from, moved_to))
