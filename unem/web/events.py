"""Socket.IO namespaces and event names, declared once; the browser reads them from /events.js."""

from __future__ import annotations

import json

NAMESPACES = {
    "DATASETS": "/datasets",  # the home page: imports, exports, demo creation, dataset list
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
}


def events_module() -> str:
    """The ES module the browser imports, so names are never retyped in JavaScript."""
    return (
        f"export const NAMESPACES = {json.dumps(NAMESPACES, indent=2)};\n"
        f"export const EVENTS = {json.dumps(EVENTS, indent=2)};\n"
    )
