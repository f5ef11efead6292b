"""Dojo's Socket.IO namespace: a room per dataset; edits committed then broadcast in order.

Every handler answers through the acknowledgement: `{"ok": true, ...}` or
`{"ok": false, "error": message, "detail": ...}`, so the client can show the refusal.
"""

from __future__ import annotations

import base64
import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from flask import request
from flask_socketio import emit, join_room, leave_room

from unem.auth import User
from unem.errors import BadInput, Forbidden, UnemError
from unem.proofread import edits, marks, requests, segments
from unem.web import signals
from unem.web.auth_views import current_user
from unem.web.events import EVENTS, NAMESPACES
from unem.web.sockets import AuthenticatedNamespace
from unem.web.state import workspace

PRESENCE_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
                    "#f032e6", "#bcf60c", "#008080", "#9a6324"]
Handler = Callable[..., dict[str, Any]]


def room(dataset_id: str) -> str:
    return f"dataset:{dataset_id}"


def answered(handler: Handler) -> Handler:
    """Turn a user-facing error into `{"ok": false, "error": ...}` for the acknowledgement."""

    @functools.wraps(handler)
    def wrapper(self: Any, data: Any = None) -> dict[str, Any]:
        try:
            if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
                raise BadInput("Name the dataset.")
            return {"ok": True, **handler(self, data)}
        except UnemError as error:
            return {"ok": False, "error": error.message, "detail": error.detail}

    return wrapper


def acting_user(action: str) -> User:
    user = current_user()
    if user is None or not user.can(action):
        raise Forbidden(f"Your role may not do this (needs {action}).")
    return user


def integer(data: dict[str, Any], key: str) -> int:
    try:
        return int(data[key])
    except (KeyError, TypeError, ValueError) as error:
        raise BadInput(f"{key} must be a whole number.") from error


class Presence:
    """Who is in which dataset room and where their cursor is."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: dict[str, dict[str, dict[str, Any]]] = {}  # dataset -> sid -> member

    def join(self, dataset_id: str, sid: str, user: str) -> None:
        with self.lock:
            members = self.members.setdefault(dataset_id, {})
            colour = PRESENCE_COLOURS[len(members) % len(PRESENCE_COLOURS)]
            members[sid] = {"sid": sid, "user": user, "colour": colour, "cursor": None}

    def leave(self, sid: str) -> list[str]:
        with self.lock:
            left = [d for d, members in self.members.items() if members.pop(sid, None)]
            return left

    def move(self, dataset_id: str, sid: str, cursor: dict[str, int]) -> None:
        with self.lock:
            member = self.members.get(dataset_id, {}).get(sid)
            if member is not None:
                member["cursor"] = cursor

    def users(self, dataset_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self.members.get(dataset_id, {}).values()]


class DojoNamespace(AuthenticatedNamespace):
    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.presence = Presence()

    def _broadcast(self, event: str, payload: Any, dataset_id: str) -> None:
        emit(event, payload, to=room(dataset_id), namespace=self.namespace)

    def _broadcast_presence(self, dataset_id: str) -> None:
        self._broadcast(EVENTS["DOJO_PRESENCE"], {"users": self.presence.users(dataset_id)},
                        dataset_id)

    def on_disconnect(self, reason: Any = None) -> None:
        for dataset_id in self.presence.leave(request.sid):  # type: ignore[attr-defined]
            self._broadcast_presence(dataset_id)

    @answered
    def on_join(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("view")
        dataset_id = data["dataset"]
        proofreader = edits.proofreader(workspace(), dataset_id)
        proofreader.ensure_ready()
        join_room(room(dataset_id))
        self.presence.join(dataset_id, request.sid, user.name)  # type: ignore[attr-defined]
        self._broadcast_presence(dataset_id)
        since = int(data.get("version") or 0)
        return {"version": proofreader.version(),
                "edits": [e.to_json() for e in proofreader.edits_since(since)],
                "presence": self.presence.users(dataset_id),
                "locks": {str(s): u for s, u in proofreader.locks().items()}}

    @answered
    def on_leave(self, data: dict[str, Any]) -> dict[str, Any]:
        leave_room(room(data["dataset"]))
        self.presence.leave(request.sid)  # type: ignore[attr-defined]
        self._broadcast_presence(data["dataset"])
        return {}

    @answered
    def on_since(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("view")
        proofreader = edits.proofreader(workspace(), data["dataset"])
        return {"edits": [e.to_json() for e in proofreader.edits_since(integer(data, "since"))]}

    def _publish(self, dataset_id: str, edit: edits.Edit) -> dict[str, Any]:
        payload = edit.to_json()
        self._broadcast(EVENTS["DOJO_EDITED"], payload, dataset_id)
        signals.send(signals.edit_committed, dataset=dataset_id, edit=edit)
        return {"edit": payload}

    @answered
    def on_edit(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("edit")
        payload, tool = requests.parse_edit(str(data.get("kind")), data.get("params"))
        base = data.get("base_version")
        edit = edits.proofreader(workspace(), data["dataset"]).commit(
            user.name, str(data["kind"]), payload, tool, txid=data.get("txid"),
            base_version=int(base) if base is not None else None)
        return self._publish(data["dataset"], edit)

    @answered
    def on_preview(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        kind = str(data.get("kind"))
        if kind not in requests.PREVIEW_KINDS:
            raise BadInput(f"No preview for {kind}.")
        _, tool = requests.parse_edit(kind, data.get("params"))
        change = edits.proofreader(workspace(), data["dataset"]).preview(tool)
        if change.patch is None:
            return {"box": None, "mapping": {str(f): a for f, (_, a) in change.mapping.items()}}
        bits = np.packbits(change.patch.changed.ravel())
        return {"box": change.patch.box.to_json(),
                "mask": base64.b64encode(bits.tobytes()).decode("ascii")}

    @answered
    def on_undo(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("edit")
        proofreader = edits.proofreader(workspace(), data["dataset"])
        return self._publish(data["dataset"], proofreader.undo(user.name, data.get("txid")))

    @answered
    def on_redo(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("edit")
        proofreader = edits.proofreader(workspace(), data["dataset"])
        return self._publish(data["dataset"], proofreader.redo(user.name, data.get("txid")))

    @answered
    def on_revert(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("edit")
        proofreader = edits.proofreader(workspace(), data["dataset"])
        edit = proofreader.revert_to(user.name, integer(data, "version"), data.get("txid"))
        return self._publish(data["dataset"], edit)

    @answered
    def on_new_id(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        proofreader = edits.proofreader(workspace(), data["dataset"])
        proofreader.ensure_ready()
        return {"id": proofreader.new_segment_id()}

    @answered
    def on_lock(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("edit")
        proofreader = edits.proofreader(workspace(), data["dataset"])
        proofreader.set_lock(user.name, integer(data, "segment"), bool(data.get("locked")),
                             is_admin=user.can("admin"))
        locks = {str(s): u for s, u in proofreader.locks().items()}
        self._broadcast(EVENTS["DOJO_LOCKS"], {"locks": locks}, data["dataset"])
        return {"locks": locks}

    @answered
    def on_rename(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        segment = integer(data, "segment")
        name = segments.rename_segment(workspace().db, data["dataset"], segment,
                                       str(data.get("name", "")))
        self._broadcast(EVENTS["DOJO_SEGMENT"], {"id": segment, "name": name}, data["dataset"])
        signals.send(signals.segment_renamed, dataset=data["dataset"], segment=segment, name=name)
        return {"id": segment, "name": name}

    def _broadcast_marks(self, dataset_id: str) -> None:
        self._broadcast(EVENTS["DOJO_MARKS"],
                        {"marks": marks.list_marks(workspace().db, dataset_id)}, dataset_id)

    @answered
    def on_mark_add(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("edit")
        mark = marks.add_mark(workspace().db, data["dataset"], user.name, integer(data, "z"),
                              integer(data, "y"), integer(data, "x"), str(data.get("note", "")))
        self._broadcast_marks(data["dataset"])
        return {"mark": mark}

    @answered
    def on_mark_update(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        resolved = data.get("resolved")
        mark = marks.update_mark(workspace().db, data["dataset"], integer(data, "id"),
                                 note=data.get("note"),
                                 resolved=None if resolved is None else bool(resolved))
        self._broadcast_marks(data["dataset"])
        return {"mark": mark}

    @answered
    def on_mark_delete(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        marks.delete_mark(workspace().db, data["dataset"], integer(data, "id"))
        self._broadcast_marks(data["dataset"])
        return {}

    @answered
    def on_ping(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("view")
        return {"echo": data}

    def on_cursor(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
            return
        try:
            cursor = {k: integer(data, k) for k in ("z", "y", "x")}
        except BadInput:
            return
        self.presence.move(data["dataset"], request.sid, cursor)  # type: ignore[attr-defined]
        emit(EVENTS["DOJO_PRESENCE"], {"users": self.presence.users(data["dataset"])},
             to=room(data["dataset"]), include_self=False, namespace=self.namespace)


def dojo_namespace() -> DojoNamespace:
    return DojoNamespace(NAMESPACES["DOJO"])
