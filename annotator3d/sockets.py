"""The annotator's Socket.IO namespace: a room per dataset, as Dojo's (and its helpers).

Names, colours and markers are stored, then broadcast to everyone viewing the dataset;
a rename reaches Dojo's room too, since both tools show the same segment names.
"""

# No `from __future__ import annotations`: it would shadow the module `unem.annotations`.
from typing import Any

from flask_socketio import emit, join_room, leave_room

from dojo.sockets import acting_user, answered, integer
from dojo.sockets import room as dojo_room
from unem import annotations
from unem.web.events import EVENTS, NAMESPACES
from unem.web.sockets import AuthenticatedNamespace
from unem.web.state import workspace

MARKER_KEYS = ("name", "segment", "position", "radius", "colour")


def room(dataset_id: str) -> str:
    return f"dataset:{dataset_id}"


def marker_values(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in MARKER_KEYS if key in data}


class AnnotatorNamespace(AuthenticatedNamespace):
    def _broadcast(self, event: str, payload: Any, dataset_id: str) -> None:
        emit(event, payload, to=room(dataset_id), namespace=self.namespace)

    def _broadcast_markers(self, dataset_id: str) -> None:
        markers = annotations.list_markers(workspace().db, dataset_id)
        self._broadcast(
            EVENTS["ANNOTATOR_MARKERS"], {"markers": [m.to_json() for m in markers]}, dataset_id
        )

    @answered
    def on_join(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("view")
        state = annotations.viewer_state(workspace(), data["dataset"])
        join_room(room(data["dataset"]))
        return {"version": state["version"]}

    @answered
    def on_leave(self, data: dict[str, Any]) -> dict[str, Any]:
        leave_room(room(data["dataset"]))
        return {}

    @answered
    def on_rename(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        segment = integer(data, "segment")
        name = annotations.rename_object(
            workspace().db, data["dataset"], segment, data.get("name", "")
        )
        self._broadcast(EVENTS["ANNOTATOR_OBJECT"], {"id": segment, "name": name}, data["dataset"])
        emit(
            EVENTS["DOJO_SEGMENT"],
            {"id": segment, "name": name},
            to=dojo_room(data["dataset"]),
            namespace=NAMESPACES["DOJO"],
        )
        return {"id": segment, "name": name}

    @answered
    def on_colour(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        segment = integer(data, "segment")
        colour = annotations.set_segment_colour(
            workspace().db, data["dataset"], segment, data.get("colour")
        )
        change = {"id": segment, "colour": colour}
        self._broadcast(EVENTS["ANNOTATOR_OBJECT"], change, data["dataset"])
        emit(
            EVENTS["DOJO_SEGMENT"],
            change,
            to=dojo_room(data["dataset"]),
            namespace=NAMESPACES["DOJO"],
        )
        return change

    @answered
    def on_marker_add(self, data: dict[str, Any]) -> dict[str, Any]:
        user = acting_user("edit")
        marker = annotations.add_marker(
            workspace().db, data["dataset"], user.name, marker_values(data)
        )
        self._broadcast_markers(data["dataset"])
        return {"marker": marker.to_json()}

    @answered
    def on_marker_update(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        marker = annotations.update_marker(
            workspace().db, data["dataset"], integer(data, "id"), marker_values(data)
        )
        self._broadcast_markers(data["dataset"])
        return {"marker": marker.to_json()}

    @answered
    def on_marker_delete(self, data: dict[str, Any]) -> dict[str, Any]:
        acting_user("edit")
        annotations.delete_marker(workspace().db, data["dataset"], integer(data, "id"))
        self._broadcast_markers(data["dataset"])
        return {}


def annotator_namespace() -> AnnotatorNamespace:
    return AnnotatorNamespace(NAMESPACES["ANNOTATOR"])
