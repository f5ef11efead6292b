"""Socket.IO namespaces and event names, declared once; the browser reads them from /events.js."""

from __future__ import annotations

import json

NAMESPACES = {
    "DATASETS": "/datasets",  # the home page: imports, exports, demo creation, dataset list
    "DOJO": "/dojo",  # the proofreader: a room per dataset
    "JOBS": "/jobs",  # the jobs pages and the home page: every job's state, progress and log
    "ANNOTATOR": "/annotator",  # the 3D annotator: a room per dataset
}
EVENTS = {
    # payload {id, kind, title, state, step, total, message, user}
    "TASK_PROGRESS": "task:progress",
    # payload as TASK_PROGRESS plus {result}; result is the created dataset or export
    "TASK_DONE": "task:done",
    # payload as TASK_PROGRESS plus {error}: a message a user can act on
    "TASK_FAILED": "task:failed",
    # payload {}: a dataset was added, renamed or deleted; clients refetch /api/datasets
    "DATASETS_CHANGED": "datasets:changed",
    # ---- /dojo, client → server (each answers through the Socket.IO acknowledgement);
    # the names are the handlers' names in dojo/sockets.py (on_<name>) ----
    # {dataset, version} → {ok, version, edits (missed since version), presence, locks, marks}
    "DOJO_JOIN": "join",
    # {dataset, kind, params, txid, base_version} → {ok, edit} or {ok: false, error, detail}
    "DOJO_EDIT": "edit",
    # {dataset, kind, params} → {ok, box, mask (base64 bits of the voxels that would change)}
    "DOJO_PREVIEW": "preview",
    # {dataset, txid} → {ok, edit}: undo / redo the caller's own last edit
    "DOJO_UNDO": "undo",
    "DOJO_REDO": "redo",
    # {dataset, version, txid} → {ok, edit}: a new edit restoring the state at `version`
    "DOJO_REVERT": "revert",
    # {dataset, since} → {ok, edits}: catch up after a disconnect
    "DOJO_SINCE": "since",
    # {dataset} → {ok, id}: a fresh segment id to paint with
    "DOJO_NEW_ID": "new_id",
    # {dataset, segment, locked} → {ok}; broadcast DOJO_LOCKS
    "DOJO_LOCK": "lock",
    # {dataset, segment, name} → {ok}; broadcast DOJO_SEGMENT
    "DOJO_RENAME": "rename",
    # {dataset, z, y, x, note} / {dataset, id, note?, resolved?} / {dataset, id} → {ok, mark}
    "DOJO_MARK_ADD": "mark_add",
    "DOJO_MARK_UPDATE": "mark_update",
    "DOJO_MARK_DELETE": "mark_delete",
    # {dataset, z, y, x}: where the caller's cursor is (no answer)
    "DOJO_CURSOR": "cursor",
    # {dataset, ...} → {ok, echo: what was sent}: round-trip time, for the latency display
    "DOJO_PING": "ping",
    # ---- /dojo, server → the dataset's room ----
    # a committed edit {version, user, time, kind, payload, mapping {fragment: segment},
    # box [z0, y0, x0, z1, y1, x1] or null, segments, undo_of}; the author receives it too
    "DOJO_EDITED": "edited",
    # {locks: {segment: user}}
    "DOJO_LOCKS": "locks",
    # {id, name} (renamed here or in the 3D annotator) or {id, colour: "#rrggbb"} (recoloured
    # in the 3D annotator; Dojo draws the segment in that colour)
    "DOJO_SEGMENT": "segment",
    # {marks: [...]}
    "DOJO_MARKS": "marks",
    # {users: [{sid, user, colour, cursor: {z, y, x} | null}]}
    "DOJO_PRESENCE": "presence",
    # ---- /annotator, client → server (answers through the acknowledgement, as /dojo's);
    # positions and radii in nm, positions as [x, y, z] ----
    # {dataset} → {ok, version}: enter the dataset's room
    "ANNOTATOR_JOIN": "join",
    # {dataset, segment, name} → {ok, id, name}; broadcast ANNOTATOR_OBJECT here and
    # DOJO_SEGMENT on /dojo (the same names in both tools)
    "ANNOTATOR_RENAME": "rename",
    # {dataset, segment, colour: "#rrggbb" | null (back to the default)} → {ok, id, colour};
    # broadcast ANNOTATOR_OBJECT here and DOJO_SEGMENT on /dojo
    "ANNOTATOR_COLOUR": "colour",
    # {dataset, position, segment, name, radius, colour} → {ok, marker}; broadcast MARKERS
    "ANNOTATOR_MARKER_ADD": "marker_add",
    # {dataset, id, and any of name, segment, position, radius, colour} → {ok, marker}
    "ANNOTATOR_MARKER_UPDATE": "marker_update",
    # {dataset, id} → {ok}
    "ANNOTATOR_MARKER_DELETE": "marker_delete",
    # ---- /annotator, server → the dataset's room ----
    # {id, name?, colour?}: an object was renamed (here or in Dojo) or recoloured
    "ANNOTATOR_OBJECT": "object",
    # {markers: [{id, segment, name, position, radius, colour, user, created_at}, ...]}
    "ANNOTATOR_MARKERS": "markers",
    # {dataset, segment, version, removed}: a Dojo edit changed this segment and its mesh
    # was made again (removed: the segment no longer exists); clients refetch it
    "ANNOTATOR_MESH_UPDATED": "mesh:updated",
    # ---- /jobs, server → every connected client ----
    # a job as GET /api/jobs/<id> answers (without its log): sent when it is submitted,
    # starts, ends (done/failed/cancelled/interrupted) or is queued again to resume
    "JOB_UPDATED": "job:updated",
    # {id, state, step, total, message, metrics {name: number}, eta_seconds}: a running
    # job's worker reported progress (at most every 50 ms per job)
    "JOB_PROGRESS": "job:progress",
    # {id, lines: [...]}: lines appended to a job's log (batched, at most every 200 ms)
    "JOB_LOG": "job:log",
    # ---- /jobs, client → server ----
    # {...} → {ok, echo: what was sent}: round-trip time (benchmarks, latency display)
    "JOBS_PING": "ping",
}


def events_module() -> str:
    """The ES module the browser imports, so names are never retyped in JavaScript."""
    return (
        f"export const NAMESPACES = {json.dumps(NAMESPACES, indent=2)};\n"
        f"export const EVENTS = {json.dumps(EVENTS, indent=2)};\n"
    )
