"""The annotator lives with Dojo's edits: re-mesh what an edit touched, and pass on renames.

Dojo sends `unem.web.signals` when it commits an edit or renames a segment; this listens
for its own app, re-meshes in a background thread (one per dataset at a time, coalescing the
edits that arrive meanwhile) and tells the dataset's `/annotator` room.
"""

# No `from __future__ import annotations`: it would shadow the module `unem.annotations`.
import logging
import threading
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from annotator3d.sockets import room
from unem import annotations
from unem.web import signals
from unem.web.events import EVENTS, NAMESPACES
from unem.web.state import workspace

log = logging.getLogger(__name__)


class Live:
    def __init__(self, app: Flask, socketio: SocketIO) -> None:
        self.app = app
        self.socketio = socketio
        self.lock = threading.Lock()
        self.pending: dict[str, int] = {}  # dataset -> the version meshes are up to date with
        self.running: set[str] = set()
        # blinker keeps weak references: this object lives in app.extensions, as long as the app
        signals.edit_committed.connect(self.edit_committed, sender=app)
        signals.segment_renamed.connect(self.segment_renamed, sender=app)

    def segment_renamed(self, sender: Flask, dataset: str, segment: int, name: str) -> None:
        self._emit(EVENTS["ANNOTATOR_OBJECT"], {"id": segment, "name": name}, dataset)

    def edit_committed(self, sender: Flask, dataset: str, edit: Any) -> None:
        with self.lock:
            since = min(self.pending.get(dataset, edit.version - 1), edit.version - 1)
            self.pending[dataset] = since
            if dataset in self.running:
                return  # the running thread takes it up when it is done
            self.running.add(dataset)
        self.socketio.start_background_task(self._run, dataset)

    def _run(self, dataset: str) -> None:
        while True:
            with self.lock:
                since = self.pending.pop(dataset, None)
                if since is None:
                    self.running.discard(dataset)
                    return
            try:
                with self.app.app_context():
                    notes = annotations.remesh_touched(workspace(), dataset, since)
            except Exception:
                log.exception("re-meshing %s after version %s failed", dataset, since)
                continue
            for note in notes:
                self._emit(EVENTS["ANNOTATOR_MESH_UPDATED"], note, dataset)

    def _emit(self, event: str, payload: Any, dataset: str) -> None:
        self.socketio.emit(event, payload, to=room(dataset), namespace=NAMESPACES["ANNOTATOR"])
