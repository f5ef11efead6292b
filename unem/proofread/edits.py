"""The append-only edit log of a dataset's segmentation: commit, replay, undo, redo, revert.

Every edit is one row (version, user, time, kind, what the client asked, the mapping
change, the voxel patch) committed in the same transaction as its mapping change. Voxel
values are written to the Zarr store right after the commit and the row is then marked
applied; a crash in between is repaired on the next open by replaying the patch (the
row already holds the new values). So the dataset is always at some committed version.
Undo, redo and revert are new edits: history is never rewritten.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from unem.errors import BadInput, Conflict, Forbidden, NotFound
from unem.progress import Progress, no_progress
from unem.proofread import mapping as fragments
from unem.proofread.voxels import Box, VoxelPatch, level_array, read_box, write_patch
from unem.volumes.datasets import Dataset, Layer, get_dataset
from unem.workspace import Workspace

EDIT_LAYER = "segmentation"
REPLACE_KIND = "replace"  # the edit that replaced the whole segmentation (unem.proofread.replace)
MAX_REVERT_VOXELS = 256 * 2**20  # a revert holds its box in memory twice


@dataclass(frozen=True, eq=False)
class Change:
    """What an edit does: fragments pointed at other segments, and voxels rewritten."""

    # fragment -> (segment before, segment after); a new fragment maps from its own id
    mapping: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    patch: VoxelPatch | None = None

    def inverse(self) -> Change:
        return Change({f: (a, b) for f, (b, a) in self.mapping.items()},
                      self.patch.inverse() if self.patch is not None else None)

    @property
    def empty(self) -> bool:
        no_voxels = self.patch is None or not self.patch.changed.any()
        return not self.mapping and no_voxels

    def cropped(self) -> Change:
        """The same change with its patch cut down to the voxels it changes (or dropped)."""
        if self.patch is None or not self.patch.changed.any():
            return Change(self.mapping)
        return Change(self.mapping, self.patch.cropped())


@dataclass(frozen=True)
class Edit:
    """A committed edit, as stored and as broadcast to every client of the dataset."""

    version: int
    user: str
    time: str
    kind: str
    payload: dict[str, Any]
    mapping: dict[int, tuple[int, int]]
    box: Box | None
    segments: tuple[int, ...]
    undo_of: int | None = None
    undone_by: int | None = None
    redone_by: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The broadcast form: the mapping as fragment → new segment."""
        return {
            "version": self.version, "user": self.user, "time": self.time, "kind": self.kind,
            "payload": self.payload,
            "mapping": {str(f): after for f, (_, after) in self.mapping.items()},
            "box": self.box.to_json() if self.box else None,
            "segments": list(self.segments), "undo_of": self.undo_of,
            "undone_by": self.undone_by, "redone_by": self.redone_by,
        }


class EditContext:
    """What a tool may read while it computes a change (under the dataset's edit lock)."""

    def __init__(self, proofreader: Proofreader) -> None:
        self.proofreader = proofreader
        self.shape = proofreader.layer.shape

    def read(self, box: Box) -> np.ndarray:
        return read_box(self.proofreader.labels_level0, box)

    def read_image(self, box: Box) -> np.ndarray:
        import zarr  # where arrays are opened: the server starts faster

        image = self.proofreader.dataset.layer("image")
        return np.asarray(zarr.open_array(str(image.path / "0"), mode="r")[box.slices])

    def segments_of(self, ids: Iterable[int]) -> dict[int, int]:
        return fragments.segments_of(self.proofreader.db, self.proofreader.dataset_id, ids)

    def fragments_of(self, segment: int) -> list[int]:
        return fragments.fragments_of(self.proofreader.db, self.proofreader.dataset_id, segment)

    def segment_box(self, segment: int) -> Box | None:
        return fragments.segment_box(self.proofreader.db, self.proofreader.dataset_id, segment)

    def new_ids(self, count: int = 1) -> list[int]:
        return fragments.reserve_ids(self.proofreader.db, self.proofreader.dataset_id, count)


ChangeMaker = Callable[[EditContext], Change]


@contextlib.contextmanager
def write_transaction(db: Any) -> Iterator[None]:
    """A transaction that holds the database's write lock from its first statement.

    A plain (deferred) BEGIN that reads before it writes fails at once with "database is
    locked" if any other connection writes in between (a job's progress, a mark, a
    segment name); BEGIN IMMEDIATE instead waits for the other writer, up to the timeout.
    """
    if db.conn.in_transaction:  # already inside the caller's transaction: a savepoint
        with db.atomic():
            yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def layer_stamp(db: Any, dataset_id: str, name: str = EDIT_LAYER) -> str:
    """What identifies the current volume of a layer: it changes when the layer is written
    anew (replaced, overwritten), never with edits. Empty if there is no such layer."""
    row = db.execute("select created_at, dtype from layers where dataset_id = ? and name = ?",
                     [dataset_id, name]).fetchone()
    return "" if row is None else f"{row[0]}/{row[1]}"


def _row_to_edit(row: Mapping[str, Any]) -> Edit:
    mapping = {int(f): (int(b), int(a)) for f, b, a in json.loads(row["mapping"] or "[]")}
    return Edit(
        version=row["version"], user=row["user"], time=row["time"], kind=row["kind"],
        payload=json.loads(row["payload"] or "{}"), mapping=mapping,
        box=Box.from_json(json.loads(row["box"])) if row["box"] else None,
        segments=tuple(json.loads(row["segments"] or "[]")), undo_of=row["undo_of"],
        undone_by=row["undone_by"], redone_by=row["redone_by"],
    )


class Proofreader:
    """Edits of one dataset's segmentation layer. Use `proofreader(ws, dataset_id)`."""

    def __init__(self, ws: Workspace, dataset_id: str) -> None:
        self.ws = ws
        self.dataset_id = dataset_id
        import zarr

        self.lock = threading.RLock()  # one edit at a time per dataset, in version order
        # Read before the layer: if it is replaced in between, the stamp is the older one.
        self.stamp = layer_stamp(ws.db, dataset_id)  # the volume this instance opened
        self.dataset: Dataset = get_dataset(ws, dataset_id)
        self.layer: Layer = self.dataset.layer(EDIT_LAYER)
        self.group = zarr.open_group(str(self.layer.path), mode="r+")
        self.labels_level0 = level_array(self.group, self.layer.levels[0])
        self._ready = False  # indexed and recovered (ensure_ready ran in this process)
        self._unapplied = False  # a committed edit's voxels failed to be written

    @property
    def db(self) -> Any:
        return self.ws.db

    # ---- opening and recovery ----
    def ensure_ready(self, progress: Progress = no_progress) -> None:
        """Build the fragment index on first use and replay edits a crash left unapplied."""
        with self.lock:
            if not fragments.is_indexed(self.db, self.dataset_id):
                fragments.build_index(self.db, self.dataset_id, self.layer, progress)
            self.replay_unapplied()
            self._ready = True

    def replay_unapplied(self) -> list[int]:
        """Write the voxels of committed edits not yet marked applied, in version order."""
        with self.lock:
            versions = self._replay_rows()
            for leftover in Path(self.layer.path).rglob("*.partial"):
                leftover.unlink(missing_ok=True)  # a chunk write the crash interrupted
            return versions

    def _replay_rows(self) -> list[int]:
        rows = list(self.db["edits"].rows_where(
            "dataset_id = ? and applied = 0", [self.dataset_id], order_by="version"))
        for row in rows:
            if row["patch"] is not None:
                write_patch(self.group, self.layer.levels, VoxelPatch.decode(row["patch"]))
            self._mark_applied(row["version"])
        self._unapplied = False
        return [int(row["version"]) for row in rows]

    def _prepare(self) -> None:
        """Before computing an edit: index and recover once, and finish any failed write.

        An edit is computed from the stored voxels and its patch replayed over them, so
        no edit may start while an earlier committed one is missing from the store.
        """
        if not self._ready:
            self.ensure_ready()
        elif self._unapplied:
            self._replay_rows()

    def _mark_applied(self, version: int) -> None:
        self.db.execute("update edits set applied = 1 where dataset_id = ? and version = ?",
                        [self.dataset_id, version])

    # ---- reading the log ----
    def version(self) -> int:
        row = self.db.execute("select max(version) from edits where dataset_id = ?",
                              [self.dataset_id]).fetchone()
        return int(row[0] or 0)

    def edits_since(self, version: int, limit: int = 10_000) -> list[Edit]:
        rows = self.db["edits"].rows_where("dataset_id = ? and version > ?",
                                           [self.dataset_id, version], order_by="version",
                                           limit=limit)
        return [_row_to_edit(r) for r in rows]

    def edit(self, version: int) -> Edit:
        return _row_to_edit(self._row(version))

    def _later_edits(self, version: int, other_than: str | None = None) -> Iterator[Edit]:
        """Every edit after `version` (no limit: checks must see all), optionally by others."""
        where, args = "dataset_id = ? and version > ?", [self.dataset_id, version]
        if other_than is not None:
            where, args = where + " and user != ?", [*args, other_than]
        for row in self.db["edits"].rows_where(where, args, order_by="version"):
            yield _row_to_edit(row)

    def _row(self, version: int) -> dict[str, Any]:
        rows = list(self.db["edits"].rows_where("dataset_id = ? and version = ?",
                                                [self.dataset_id, version]))
        if not rows:
            raise NotFound(f"No edit version {version} in {self.dataset_id}.")
        return dict(rows[0])

    def _change_of(self, version: int) -> Change:
        row = self._row(version)
        edit = _row_to_edit(row)
        patch = VoxelPatch.decode(row["patch"]) if row["patch"] else None
        return Change(edit.mapping, patch)

    # ---- committing ----
    def commit(self, user: str, kind: str, payload: Mapping[str, Any], make_change: ChangeMaker,
               txid: str | None = None, base_version: int | None = None,
               undo_of: int | None = None) -> Edit:
        """Compute and commit one edit; idempotent per `txid`; refused on locks and conflicts."""
        with self.lock:
            if txid is not None:
                existing = self._by_txid(txid)
                if existing is not None:
                    return existing
            self._prepare()
            change = self._make(make_change, user, base_version)
            if change.empty:
                raise BadInput("This edit changes nothing.")
            touched = self._touched_segments(change)
            self._check_locks(user, touched)
            if base_version is not None:
                self._check_conflicts(user, base_version, touched, change)
            edit = self._append(user, kind, payload, change, touched, txid, undo_of)
            if change.patch is not None:
                self._write(edit.version, change.patch)
            return edit

    def _write(self, version: int, patch: VoxelPatch) -> None:
        # Flagged until written: if the write fails, the next edit replays it first.
        self._unapplied = True
        write_patch(self.group, self.layer.levels, patch)
        self._mark_applied(version)
        self._unapplied = False

    def preview(self, make_change: ChangeMaker) -> Change:
        """Compute a change without committing it (split preview)."""
        with self.lock:
            self._prepare()
            return make_change(EditContext(self)).cropped()

    def _make(self, make_change: ChangeMaker, user: str, base_version: int | None) -> Change:
        """Run the tool; if it fails on a view that others have changed since, say so."""
        try:
            return make_change(EditContext(self)).cropped()
        except BadInput as error:
            others = [e for e in self.edits_since(base_version or 0) if e.user != user]
            if base_version is None or not others:
                raise
            raise Conflict(
                f"{others[-1].user} changed the dataset (version {others[-1].version}) after "
                f"the version {base_version} you were looking at; your view is now updated, "
                f"try again. ({error.message})", {"version": others[-1].version}) from error

    def _by_txid(self, txid: str) -> Edit | None:
        rows = list(self.db["edits"].rows_where("dataset_id = ? and txid = ?",
                                                [self.dataset_id, txid]))
        return _row_to_edit(rows[0]) if rows else None

    def _touched_segments(self, change: Change) -> set[int]:
        touched = {s for before, after in change.mapping.values() for s in (before, after)}
        if change.patch is not None:
            changed = change.patch.changed
            ids = set(np.unique(change.patch.before[changed]).tolist())
            ids |= set(np.unique(change.patch.after[changed]).tolist())
            current = fragments.segments_of(self.db, self.dataset_id, ids)
            touched |= {current[f] for f in ids}
            touched |= {change.mapping.get(f, (0, current[f]))[1] for f in ids}
        touched.discard(0)
        return touched

    def _check_locks(self, user: str, touched: set[int]) -> None:
        for segment, owner in self.locks().items():
            if segment in touched and owner != user:
                raise Forbidden(f"Segment {segment} is locked by {owner}.",
                                {"segment": segment, "locked_by": owner})

    def _check_conflicts(self, user: str, base: int, touched: set[int], change: Change) -> None:
        box = change.patch.box if change.patch is not None else None
        for other in self._later_edits(base, other_than=user):
            overlap = touched & set(other.segments)
            if overlap or (box is not None and other.box is not None and box.intersects(other.box)):
                what = f"segment {min(overlap)}" if overlap else "the voxels you edited"
                raise Conflict(
                    f"{other.user} changed {what} (version {other.version}) after the version "
                    f"{base} you were looking at; your view is now updated, try again.",
                    {"version": other.version, "user": other.user})

    def _append(self, user: str, kind: str, payload: Mapping[str, Any], change: Change,
                touched: set[int], txid: str | None, undo_of: int | None) -> Edit:
        patch = change.patch
        with write_transaction(self.db):
            self._refuse_if_replaced()
            version = self.version() + 1
            self._apply_to_tables(change)
            self._touch_segment_rows(touched, version, user)
            self._link_undo_redo(kind, undo_of, version)
            row = {
                "dataset_id": self.dataset_id, "version": version, "user": user, "time": now(),
                "kind": kind, "txid": txid, "payload": json.dumps(dict(payload)),
                "mapping": json.dumps([[f, b, a] for f, (b, a) in change.mapping.items()]),
                "patch": patch.encode() if patch is not None else None,
                "box": json.dumps(patch.box.to_json()) if patch is not None else None,
                "segments": json.dumps(sorted(touched)),
                "applied": 0 if patch is not None else 1, "undo_of": undo_of,
                "undone_by": None, "redone_by": None,
            }
            self.db["edits"].insert(row)
        return _row_to_edit(row)

    def _refuse_if_replaced(self) -> None:
        """Inside the commit's transaction: the change was computed on the volume this
        instance opened; if a job replaced the segmentation meanwhile, it must not land."""
        if layer_stamp(self.db, self.dataset_id) != self.stamp:
            raise Conflict("The segmentation of this dataset was replaced meanwhile; your "
                           "edit was not saved. Your view is now updated.", {"replaced": True})

    def _apply_to_tables(self, change: Change) -> None:
        if change.patch is not None:
            ids = np.unique(change.patch.after).tolist()
            fragments.ensure_fragments(self.db, self.dataset_id, {f: f for f in ids})
            fragments.apply_counts(self.db, self.dataset_id, change.patch.count_deltas(),
                                   change.patch.box)
            self._bump_next_id(max(ids, default=0))
        fragments.ensure_fragments(self.db, self.dataset_id,
                                   {f: a for f, (_, a) in change.mapping.items()})
        fragments.set_segments(self.db, self.dataset_id,
                               {f: a for f, (_, a) in change.mapping.items()})
        self._bump_next_id(max((a for _, a in change.mapping.values()), default=0))

    def _bump_next_id(self, used: int) -> None:
        self.db.execute("update proofread_state set next_id = max(next_id, ?) "
                        "where dataset_id = ?", [used + 1, self.dataset_id])

    def _link_undo_redo(self, kind: str, undo_of: int | None, version: int) -> None:
        """Mark what an undo undid (or a redo redid) in the same transaction as the edit."""
        column = {"undo": "undone_by", "redo": "redone_by"}.get(kind)
        if column is not None and undo_of is not None:
            self.db.execute(f"update edits set {column} = ? where dataset_id = ? and version = ?",
                            [version, self.dataset_id, undo_of])

    def _touch_segment_rows(self, touched: set[int], version: int, user: str) -> None:
        for segment in touched:
            self.db.execute(
                "insert into segments (dataset_id, segment, last_editor, last_version) "
                "values (?, ?, ?, ?) on conflict (dataset_id, segment) do update set "
                "last_editor = excluded.last_editor, last_version = excluded.last_version",
                [self.dataset_id, segment, user, version])

    # ---- undo, redo, revert ----
    def undo(self, user: str, txid: str | None = None) -> Edit:
        """Apply the inverse of `user`'s last edit that is still in effect."""
        with self.lock:
            if txid is not None and (done := self._by_txid(txid)) is not None:
                return done
            self._prepare()
            target = self._last_undoable(user)
            self._refuse_if_overwritten(target, user, "undo")
            inverse = self._change_of(target.version).inverse()
            return self.commit(user, "undo", {"of": target.version}, lambda ctx: inverse,
                               txid=txid, undo_of=target.version)

    def redo(self, user: str, txid: str | None = None) -> Edit:
        """Re-apply what `user`'s last undo took back, if they made no new edit since."""
        with self.lock:
            if txid is not None and (done := self._by_txid(txid)) is not None:
                return done
            self._prepare()
            undo = self._last_redoable(user)
            original = self.edit(int(undo.undo_of or 0))
            self._refuse_if_overwritten(undo, user, "redo")
            forward = self._change_of(undo.version).inverse()
            return self.commit(user, "redo", {"of": original.version}, lambda ctx: forward,
                               txid=txid, undo_of=undo.version)

    def _last_undoable(self, user: str) -> Edit:
        rows = self.db["edits"].rows_where(
            "dataset_id = ? and user = ? and kind not in ('undo', ?) and undone_by is null",
            [self.dataset_id, user, REPLACE_KIND], order_by="version desc", limit=1)
        found = [_row_to_edit(r) for r in rows]
        if not found:
            raise BadInput("Nothing to undo.")
        return found[0]

    def _last_redoable(self, user: str) -> Edit:
        # A new edit (anything but an undo or redo) after the undos empties the redo stack.
        rows = self.db["edits"].rows_where(
            "dataset_id = ? and user = ? and kind = 'undo' and redone_by is null "
            "and version > coalesce((select max(version) from edits where dataset_id = ? "
            "and user = ? and kind not in ('undo', 'redo')), 0)",
            [self.dataset_id, user, self.dataset_id, user], order_by="version desc", limit=1)
        found = [_row_to_edit(r) for r in rows]
        if not found:
            raise BadInput("Nothing to redo.")
        return found[0]

    def _refuse_if_overwritten(self, target: Edit, user: str, action: str) -> None:
        """Refuse when someone else's later edit touched the same segments or voxels.

        The user's own later edits need no check: undo and redo walk their own edits as a
        stack, so whatever they did after `target` has already been taken back. Nor do
        later edits that were themselves undone: with their undo they changed nothing.
        """
        for later in self._later_edits(target.version, other_than=user):
            if self._cancelled_after(later, target.version):
                continue
            overlap = set(later.segments) & set(target.segments)
            boxes = later.box is not None and target.box is not None and later.box.intersects(
                target.box)
            if overlap or boxes:
                raise Conflict(
                    f"Cannot {action}: {later.user} changed the same segments or voxels "
                    f"afterwards (version {later.version}).",
                    {"version": later.version, "user": later.user})

    def _cancelled_after(self, edit: Edit, version: int) -> bool:
        """Whether `edit` (after `version`) is cancelled by, or cancels, another edit after it.

        An edit, its undo, the redo of that undo and so on form a chain; after `version`,
        its links cancel in pairs from the first one (edit + undo, redo + undo, ...), and a
        pair leaves every voxel and mapping entry as it found them: an undo or redo is only
        allowed when nothing else still in effect touched the same voxels meanwhile.
        """
        position, link = 0, edit
        while link.kind in ("undo", "redo") and (link.undo_of or 0) > version:
            link, position = self.edit(int(link.undo_of or 0)), position + 1
        cancelled_by = edit.redone_by if edit.kind == "undo" else edit.undone_by
        return position % 2 == 1 or cancelled_by is not None

    def revert_to(self, user: str, version: int, txid: str | None = None) -> Edit:
        """One new edit bringing the mapping and voxels back to their state at `version`."""
        with self.lock:
            self._prepare()
            if not 0 <= version < self.version():
                raise BadInput(f"Version {version} is not before the current one.")
            replaced = self._replaced_at()
            if version < replaced:
                raise BadInput(f"The segmentation was replaced at version {replaced}; the "
                               "history before it is archived and cannot be reverted to.")
            later = [self._change_of(e.version) for e in self._later_edits(version)]

            def change(ctx: EditContext) -> Change:
                return combined_inverse(ctx, later)

            return self.commit(user, "revert", {"to": version}, change, txid=txid)

    def _replaced_at(self) -> int:
        """The version of the last replacement of the whole segmentation (0: never)."""
        row = self.db.execute("select max(version) from edits where dataset_id = ? and kind = ?",
                              [self.dataset_id, REPLACE_KIND]).fetchone()
        return int(row[0] or 0)

    def new_segment_id(self) -> int:
        """An id no fragment or segment of this dataset has used, to paint a new segment."""
        with self.lock:
            return fragments.reserve_ids(self.db, self.dataset_id, 1)[0]

    # ---- locks ----
    def locks(self) -> dict[int, str]:
        rows = self.db.execute("select segment, locked_by from segments where dataset_id = ? "
                               "and locked_by is not null", [self.dataset_id]).fetchall()
        return {int(s): str(u) for s, u in rows}

    def set_lock(self, user: str, segment: int, locked: bool, is_admin: bool = False) -> None:
        with self.lock:
            owner = self.locks().get(segment)
            if owner is not None and owner != user and not is_admin:
                raise Forbidden(f"Segment {segment} is locked by {owner}.",
                                {"segment": segment, "locked_by": owner})
            self.db.execute(
                "insert into segments (dataset_id, segment, locked_by, locked_at) values "
                "(?, ?, ?, ?) on conflict (dataset_id, segment) do update set "
                "locked_by = excluded.locked_by, locked_at = excluded.locked_at",
                [self.dataset_id, segment, user if locked else None, now() if locked else None])


def combined_inverse(ctx: EditContext, changes: Sequence[Change]) -> Change:
    """The change undoing `changes` (oldest first) as one: mapping and voxels."""
    mapping: dict[int, tuple[int, int]] = {}
    for change in changes:
        for fragment, (before, after) in change.mapping.items():
            first_before = mapping.get(fragment, (before, after))[0]
            mapping[fragment] = (first_before, after)
    current = ctx.segments_of(mapping)
    inverse = {f: (current[f], first) for f, (first, _) in mapping.items() if current[f] != first}
    patches = [c.patch for c in changes if c.patch is not None]
    if not patches:
        return Change(inverse)
    box = patches[0].box
    for patch in patches[1:]:
        box = box.union(patch.box)
    if int(np.prod(box.shape)) > MAX_REVERT_VOXELS:
        raise BadInput("Too many voxels changed since that version to revert at once.")
    now_values = ctx.read(box)
    target = now_values.copy()
    for patch in reversed(patches):
        local = Box(patch.box.z0 - box.z0, patch.box.y0 - box.y0, patch.box.x0 - box.x0,
                    patch.box.z1 - box.z0, patch.box.y1 - box.y0, patch.box.x1 - box.x0)
        target[local.slices] = patch.before
    return Change(inverse, VoxelPatch(box, now_values, target))


_PROOFREADERS: dict[tuple[Path, str], Proofreader] = {}
_REGISTRY_LOCK = threading.Lock()


def proofreader(ws: Workspace, dataset_id: str) -> Proofreader:
    """The one Proofreader of a dataset in this process (its lock orders all edits); a new
    one once the segmentation volume was replaced (by a job, in another process)."""
    key = (ws.root, dataset_id)
    with _REGISTRY_LOCK:
        cached = _PROOFREADERS.get(key)
        if cached is None or cached.stamp != layer_stamp(ws.db, dataset_id):
            cached = _PROOFREADERS[key] = Proofreader(ws, dataset_id)
        return cached


def prepare_for_proofreading(ws: Workspace, dataset_id: str,
                             progress: Progress = no_progress) -> None:
    """Index a new dataset's fragments now (right after import, with progress), so that
    opening it in Dojo is instant even for volumes far larger than memory."""
    proofreader(ws, dataset_id).ensure_ready(progress)


def forget_proofreader(ws: Workspace, dataset_id: str) -> None:
    """Drop the cached Proofreader (after the dataset is deleted)."""
    with _REGISTRY_LOCK:
        _PROOFREADERS.pop((ws.root, dataset_id), None)
