"""The annotator's Socket.IO namespace: what one user changes reaches everyone viewing the
dataset (in the annotator and, for names and colours, in Dojo), and Dojo's edits re-mesh
what they touched.

Flask-SocketIO's test clients share the session of Flask's test clients (in process); the
last test runs a real server with real python-socketio clients on the demo dataset.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import LiveServer, start_server, stop_server
from tests.web.conftest import SocketClient
from tests.web.test_annotator_api import make_cells
from tests.web.test_dojo_sockets import create_demo, largest_segments
from unem.web.events import EVENTS, NAMESPACES

ANNOTATOR, DOJO = NAMESPACES["ANNOTATOR"], NAMESPACES["DOJO"]


@pytest.fixture
def dataset(app: Flask) -> str:
    return make_cells(app)


class Viewer:
    """A Flask-SocketIO test client in a dataset's room of one namespace."""

    def __init__(self, app: Flask, client: FlaskClient, dataset: str, namespace: str) -> None:
        self.namespace, self.dataset = namespace, dataset
        self.sockets = app.extensions["socketio"].test_client(
            app, namespace=namespace, flask_test_client=client
        )
        assert self.sockets.is_connected(namespace)
        join = EVENTS["ANNOTATOR_JOIN"] if namespace == ANNOTATOR else EVENTS["DOJO_JOIN"]
        self.joined = self.call(join, version=0)
        assert self.joined["ok"], self.joined
        self.received: list[tuple[str, Any]] = []

    def call(self, event: str, **data: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.sockets.emit(
            event, {"dataset": self.dataset, **data}, namespace=self.namespace, callback=True
        )
        return answer

    def events(self, name: str) -> list[Any]:
        self.received += [
            (e["name"], e["args"][0]) for e in self.sockets.get_received(self.namespace)
        ]
        return [payload for event, payload in self.received if event == name]

    def wait_for(
        self, name: str, found: Callable[[list[Any]], bool], timeout: float = 30
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found(self.events(name)):
                return self.events(name)
            time.sleep(0.05)
        raise AssertionError(f"no {name} as expected: {self.received}")


@pytest.fixture
def viewers(
    app: Flask,
    admin_client: FlaskClient,
    proofreader_client: FlaskClient,
    viewer_client: FlaskClient,
    dataset: str,
) -> Iterator[dict[str, Viewer]]:
    made = {
        "admin": Viewer(app, admin_client, dataset, ANNOTATOR),
        "paul": Viewer(app, proofreader_client, dataset, ANNOTATOR),
        "vera": Viewer(app, viewer_client, dataset, ANNOTATOR),
        "dojo": Viewer(app, admin_client, dataset, DOJO),
    }
    yield made
    for viewer in made.values():
        if viewer.sockets.is_connected(viewer.namespace):
            viewer.sockets.disconnect(namespace=viewer.namespace)


def test_strangers_cannot_connect(app: Flask, client: FlaskClient) -> None:
    sockets = app.extensions["socketio"].test_client(
        app, namespace=ANNOTATOR, flask_test_client=client
    )
    assert not sockets.is_connected(ANNOTATOR)


def test_joining_an_unknown_dataset_is_refused(app: Flask, admin_client: FlaskClient) -> None:
    sockets = app.extensions["socketio"].test_client(
        app, namespace=ANNOTATOR, flask_test_client=admin_client
    )
    answer = sockets.emit(
        EVENTS["ANNOTATOR_JOIN"], {"dataset": "nope"}, namespace=ANNOTATOR, callback=True
    )
    assert answer["ok"] is False and "nope" in answer["error"]
    answer = sockets.emit(EVENTS["ANNOTATOR_JOIN"], {}, namespace=ANNOTATOR, callback=True)
    assert answer == {"ok": False, "error": "Name the dataset.", "detail": None}


def test_a_rename_reaches_every_viewer_and_dojo(viewers: dict[str, Viewer]) -> None:
    answer = viewers["paul"].call(EVENTS["ANNOTATOR_RENAME"], segment=2, name=" dendrite ")
    assert answer == {"ok": True, "id": 2, "name": "dendrite"}
    for name in ("admin", "paul", "vera"):
        assert viewers[name].events(EVENTS["ANNOTATOR_OBJECT"]) == [{"id": 2, "name": "dendrite"}]
    assert viewers["dojo"].events(EVENTS["DOJO_SEGMENT"]) == [{"id": 2, "name": "dendrite"}]
    names = viewers["dojo"].call(EVENTS["DOJO_JOIN"], version=0)
    assert names["ok"]


def test_a_rename_in_dojo_reaches_the_annotator(viewers: dict[str, Viewer]) -> None:
    assert viewers["dojo"].call(EVENTS["DOJO_RENAME"], segment=1, name="soma")["ok"]
    for name in ("admin", "paul", "vera"):
        assert viewers[name].events(EVENTS["ANNOTATOR_OBJECT"]) == [{"id": 1, "name": "soma"}]


def test_colours_reach_every_viewer_and_dojo(
    app: Flask, viewers: dict[str, Viewer], dataset: str, admin_client: FlaskClient
) -> None:
    state = f"/dojo/api/{dataset}/state"
    assert admin_client.get(state).get_json()["colours"] == {}
    answer = viewers["admin"].call(EVENTS["ANNOTATOR_COLOUR"], segment=1, colour="#00FF00")
    assert answer == {"ok": True, "id": 1, "colour": "#00ff00"}
    assert viewers["vera"].events(EVENTS["ANNOTATOR_OBJECT"]) == [{"id": 1, "colour": "#00ff00"}]
    # Dojo draws the segment in it: live, and from the state it loads
    assert viewers["dojo"].events(EVENTS["DOJO_SEGMENT"]) == [{"id": 1, "colour": "#00ff00"}]
    assert admin_client.get(state).get_json()["colours"] == {"1": "#00ff00"}
    bad = viewers["admin"].call(EVENTS["ANNOTATOR_COLOUR"], segment=1, colour="green")
    assert bad["ok"] is False and "#rrggbb" in bad["error"]
    from unem.annotations import segment_colours

    assert segment_colours(app.extensions["unem"].workspace.db, dataset) == {1: "#00ff00"}


def test_markers_reach_every_viewer(viewers: dict[str, Viewer]) -> None:
    paul, vera = viewers["paul"], viewers["vera"]
    added = paul.call(
        EVENTS["ANNOTATOR_MARKER_ADD"],
        segment=1,
        position=[48, 48, 120],
        name="synapse",
        radius=10,
        colour="#ff0000",
    )
    assert added["ok"], added
    marker = added["marker"]
    assert (marker["user"], marker["position"], marker["segment"]) == (
        "paul",
        [48.0, 48.0, 120.0],
        1,
    )
    assert vera.events(EVENTS["ANNOTATOR_MARKERS"]) == [{"markers": [marker]}]
    changed = paul.call(
        EVENTS["ANNOTATOR_MARKER_UPDATE"], id=marker["id"], name="big synapse", radius=20
    )
    assert changed["marker"]["name"] == "big synapse" and changed["marker"]["radius"] == 20
    assert vera.events(EVENTS["ANNOTATOR_MARKERS"])[-1] == {"markers": [changed["marker"]]}
    assert paul.call(EVENTS["ANNOTATOR_MARKER_DELETE"], id=marker["id"]) == {"ok": True}
    assert vera.events(EVENTS["ANNOTATOR_MARKERS"])[-1] == {"markers": []}
    missing = paul.call(EVENTS["ANNOTATOR_MARKER_DELETE"], id=marker["id"])
    assert missing["ok"] is False and "No marker" in missing["error"]
    bad = paul.call(EVENTS["ANNOTATOR_MARKER_ADD"], segment=1, position=[1, 2], name="x")
    assert bad["ok"] is False and "position" in bad["error"]
    assert len(vera.events(EVENTS["ANNOTATOR_MARKERS"])) == 3  # nothing for the refusals


def test_viewers_may_look_but_not_change(viewers: dict[str, Viewer]) -> None:
    vera = viewers["vera"]
    refused = [
        vera.call(EVENTS["ANNOTATOR_RENAME"], segment=1, name="mine"),
        vera.call(EVENTS["ANNOTATOR_COLOUR"], segment=1, colour="#000000"),
        vera.call(EVENTS["ANNOTATOR_MARKER_ADD"], segment=1, position=[1, 2, 3]),
        vera.call(EVENTS["ANNOTATOR_MARKER_UPDATE"], id=1, name="x"),
        vera.call(EVENTS["ANNOTATOR_MARKER_DELETE"], id=1),
    ]
    assert all(r["ok"] is False and "role" in r["error"] for r in refused), refused
    assert viewers["paul"].events(EVENTS["ANNOTATOR_OBJECT"]) == []
    assert viewers["paul"].events(EVENTS["ANNOTATOR_MARKERS"]) == []


def test_a_marker_import_over_http_reaches_the_room(
    viewers: dict[str, Viewer], proofreader_client: FlaskClient, dataset: str
) -> None:
    csv = "x_nm,y_nm,z_nm,name\n1,2,3,imported\n"
    response = proofreader_client.post(f"/annotator/api/{dataset}/markers.csv", json={"csv": csv})
    assert response.status_code == 200
    [event] = viewers["vera"].events(EVENTS["ANNOTATOR_MARKERS"])
    assert [m["name"] for m in event["markers"]] == ["imported"]


def test_a_dojo_merge_remeshes_and_announces_the_touched_segments(
    viewers: dict[str, Viewer], viewer_client: FlaskClient, dataset: str
) -> None:
    etag = viewer_client.get(f"/annotator/api/{dataset}/meshes/1").headers["ETag"]
    untouched = viewer_client.get(f"/annotator/api/{dataset}/meshes/2").headers["ETag"]
    answer = viewers["dojo"].call(
        EVENTS["DOJO_EDIT"],
        kind="merge",
        params={"segments": [1, 3]},
        txid=uuid.uuid4().hex,
        base_version=0,
    )
    assert answer["ok"], answer
    notes = viewers["vera"].wait_for(EVENTS["ANNOTATOR_MESH_UPDATED"], lambda n: len(n) >= 2)
    assert sorted((n["segment"], n["removed"]) for n in notes) == [(1, False), (3, True)]
    assert all(n["dataset"] == dataset and n["version"] == 1 for n in notes)
    again = viewer_client.get(f"/annotator/api/{dataset}/meshes/1", headers={"If-None-Match": etag})
    assert again.status_code == 200
    same = viewer_client.get(
        f"/annotator/api/{dataset}/meshes/2", headers={"If-None-Match": untouched}
    )
    assert same.status_code == 304
    objects = viewer_client.get(f"/annotator/api/{dataset}/objects").get_json()["objects"]
    assert sorted(o["id"] for o in objects) == [1, 2]


def test_edits_arriving_while_remeshing_are_all_remeshed(
    app: Flask, viewers: dict[str, Viewer], dataset: str
) -> None:
    dojo = viewers["dojo"]
    for version, segments in enumerate(([1, 3], [2, 1]), start=1):
        answer = dojo.call(
            EVENTS["DOJO_EDIT"],
            kind="merge",
            params={"segments": segments},
            txid=uuid.uuid4().hex,
            base_version=version - 1,
        )
        assert answer["ok"], answer
    notes = viewers["paul"].wait_for(
        EVENTS["ANNOTATOR_MESH_UPDATED"],
        lambda n: any(x["segment"] == 2 and x["version"] == 2 for x in n),
    )
    assert {n["segment"] for n in notes if n["removed"]} >= {1, 3}
    assert {n["segment"] for n in notes if not n["removed"]} >= {2}


# ---- with a real server and real clients ----


class Listener:
    """A python-socketio client in the annotator room of a dataset, recording mesh updates."""

    def __init__(self, server: LiveServer, session: requests.Session, dataset: str) -> None:
        self.notes: list[dict[str, Any]] = []
        self.names: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        self.client = SocketClient()
        self.client.on(EVENTS["ANNOTATOR_MESH_UPDATED"], self._note, namespace=ANNOTATOR)
        self.client.on(EVENTS["ANNOTATOR_OBJECT"], self._name, namespace=ANNOTATOR)
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        self.client.connect(
            server.base,
            headers={"Cookie": cookie},
            namespaces=[ANNOTATOR, DOJO],
            transports=["websocket"],
        )
        self.dataset = dataset
        assert self.call(ANNOTATOR, EVENTS["ANNOTATOR_JOIN"])["ok"]

    def _note(self, note: dict[str, Any]) -> None:
        with self.arrived:
            self.notes.append(note)
            self.arrived.notify_all()

    def _name(self, change: dict[str, Any]) -> None:
        with self.arrived:
            self.names.append(change)
            self.arrived.notify_all()

    def call(self, namespace: str, event: str, **data: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.call(
            event, {"dataset": self.dataset, **data}, namespace=namespace, timeout=60
        )
        return answer

    def wait(self, found: Callable[[], bool], timeout: float = 60) -> None:
        with self.arrived:
            assert self.arrived.wait_for(found, timeout), (self.notes, self.names)


@pytest.fixture
def demo_server(tmp_path) -> Iterator[tuple[LiveServer, requests.Session, str]]:  # type: ignore[no-untyped-def]
    server = start_server(tmp_path / "ws")
    admin = server.admin_session()
    yield server, admin, create_demo(server, admin)
    stop_server(server)


def test_live_two_clients_see_each_others_rename_and_a_merge_remeshes(demo_server) -> None:  # type: ignore[no-untyped-def]
    server, admin, dataset = demo_server
    a, b = largest_segments(server, admin, dataset, 2)
    first, second = Listener(server, admin, dataset), Listener(server, admin, dataset)
    try:
        assert first.call(ANNOTATOR, EVENTS["ANNOTATOR_RENAME"], segment=a, name="big one")["ok"]
        second.wait(lambda: {"id": a, "name": "big one"} in second.names)
        assert first.call(DOJO, EVENTS["DOJO_JOIN"], version=0)["ok"]
        edit = first.call(
            DOJO,
            EVENTS["DOJO_EDIT"],
            kind="merge",
            params={"segments": [a, b]},
            txid=uuid.uuid4().hex,
            base_version=0,
        )
        assert edit["ok"], edit
        second.wait(
            lambda: {(n["segment"], n["removed"]) for n in second.notes} >= {(a, False), (b, True)}
        )
        mesh = admin.get(f"{server.base}/annotator/api/{dataset}/meshes/{a}", timeout=60)
        assert mesh.status_code == 200 and mesh.content[:4] == b"UNEM"
    finally:
        first.client.disconnect()
        second.client.disconnect()
