"""Dojo's live protocol with real Socket.IO clients against a real server subprocess."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
import socketio
import zarr

from tests.conftest import LiveServer, start_server, stop_server
from tests.web.conftest import SocketClient
from unem.web.events import EVENTS, NAMESPACES

DOJO = NAMESPACES["DOJO"]


def create_demo(server: LiveServer, session: requests.Session) -> str:
    session.post(f"{server.base}/api/datasets/demo", json={}).raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = session.get(f"{server.base}/api/datasets").json()["datasets"]
        if found:
            return str(found[0]["id"])
        time.sleep(0.2)
    raise TimeoutError("the demo dataset never appeared")


def add_user(server: LiveServer, admin: requests.Session, name: str) -> requests.Session:
    admin.post(
        f"{server.base}/api/users",
        json={"name": name, "password": "password-" + name, "role": "proofreader"},
    ).raise_for_status()
    session = requests.Session()
    session.post(
        f"{server.base}/login",
        data={"name": name, "password": "password-" + name},
        allow_redirects=False,
    )
    return session


class Peer:
    """A Socket.IO client in the dataset's room that records every broadcast edit."""

    def __init__(self, server: LiveServer, session: requests.Session, dataset: str) -> None:
        self.dataset = dataset
        self.edits: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        self.client = SocketClient()
        self.client.on(EVENTS["DOJO_EDITED"], self._on_edit, namespace=DOJO)
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        self.client.connect(
            server.base, headers={"Cookie": cookie}, namespaces=[DOJO], transports=["websocket"]
        )
        self.joined = self.call(EVENTS["DOJO_JOIN"], version=0)

    def _on_edit(self, edit: dict[str, Any]) -> None:
        with self.arrived:
            self.edits.append(edit)
            self.arrived.notify_all()

    def call(self, event: str, **data: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.call(
            event, {"dataset": self.dataset, **data}, namespace=DOJO, timeout=30
        )
        return answer

    def edit(
        self, kind: str, base: int | None, txid: str | None = None, **params: Any
    ) -> dict[str, Any]:
        return self.call(
            EVENTS["DOJO_EDIT"],
            kind=kind,
            params=params,
            txid=txid or uuid.uuid4().hex,
            base_version=base,
        )

    def wait_for(self, version: int, timeout: float = 10) -> None:
        with self.arrived:
            ok = self.arrived.wait_for(
                lambda: any(e["version"] >= version for e in self.edits), timeout
            )
        assert ok, f"version {version} never arrived: {[e['version'] for e in self.edits]}"

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture
def dojo_server(tmp_path) -> Iterator[tuple[LiveServer, requests.Session, str]]:  # type: ignore[no-untyped-def]
    server = start_server(tmp_path / "ws")
    admin = server.admin_session()
    dataset = create_demo(server, admin)
    yield server, admin, dataset
    stop_server(server)


def largest_segments(
    server: LiveServer, session: requests.Session, dataset: str, count: int
) -> list[int]:
    table = session.get(f"{server.base}/dojo/api/{dataset}/segments?limit={count}").json()
    return [row["id"] for row in table["segments"]]


def test_unauthenticated_socket_is_refused(dojo_server) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = dojo_server
    client = SocketClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server.base, namespaces=[DOJO], transports=["websocket"])


def test_every_client_gets_every_edit_in_order(dojo_server) -> None:  # type: ignore[no-untyped-def]
    server, admin, dataset = dojo_server
    bob = add_user(server, admin, "bob")
    peers = [Peer(server, admin, dataset), Peer(server, bob, dataset), Peer(server, admin, dataset)]
    a, b, c, d = largest_segments(server, admin, dataset, 4)
    first = peers[0].edit("merge", 0, segments=[a, b])
    assert first["ok"], first
    second = peers[1].edit("paint", 1, z=5, points=[[20, 20], [60, 80]], radius=4, segment=c)
    assert second["ok"], second
    third = peers[2].edit("merge", 2, segments=[c, d])
    assert third["ok"], third
    for peer in peers:
        peer.wait_for(3)
        assert [e["version"] for e in peer.edits] == [1, 2, 3]  # author included, in order
        assert peer.edits[0]["mapping"] == {str(f): a for f in peer.edits[0]["mapping"]}
    assert peers[1].edits[1]["box"][0] == 5
    for peer in peers:
        peer.close()


def test_reconnecting_client_catches_up(dojo_server) -> None:  # type: ignore[no-untyped-def]
    server, admin, dataset = dojo_server
    a, b, c = largest_segments(server, admin, dataset, 3)
    author = Peer(server, admin, dataset)
    late = Peer(server, admin, dataset)
    assert author.edit("merge", 0, segments=[a, b])["ok"]
    late.wait_for(1)
    late.close()
    assert author.edit("paint", 1, z=2, points=[[5, 5]], radius=3, segment=c)["ok"]
    assert author.edit("erase", 2, z=2, points=[[5, 5]], radius=1)["ok"]
    again = Peer(server, admin, dataset)
    missed = again.call(EVENTS["DOJO_SINCE"], since=1)
    assert [e["version"] for e in missed["edits"]] == [2, 3]
    assert again.joined["version"] == 3
    author.close()
    again.close()


def test_conflicting_edit_is_refused_not_lost(dojo_server) -> None:  # type: ignore[no-untyped-def]
    server, admin, dataset = dojo_server
    bob = add_user(server, admin, "bob")
    alice_peer, bob_peer = Peer(server, admin, dataset), Peer(server, bob, dataset)
    a, b, c = largest_segments(server, admin, dataset, 3)
    assert alice_peer.edit("merge", 0, segments=[a, b])["ok"]
    stale = bob_peer.edit("merge", 0, segments=[b, c])  # bob has not seen version 1
    assert not stale["ok"] and "admin" in stale["error"]
    fresh = bob_peer.edit("merge", 1, segments=[a, c])
    assert fresh["ok"] and fresh["edit"]["version"] == 2
    alice_peer.close()
    bob_peer.close()


def test_locked_segment_refuses_other_users(dojo_server) -> None:  # type: ignore[no-untyped-def]
    server, admin, dataset = dojo_server
    bob = add_user(server, admin, "bob")
    alice_peer, bob_peer = Peer(server, admin, dataset), Peer(server, bob, dataset)
    a, b = largest_segments(server, admin, dataset, 2)
    assert alice_peer.call(EVENTS["DOJO_LOCK"], segment=a, locked=True)["ok"]
    refused = bob_peer.edit("merge", 0, segments=[b, a])
    assert not refused["ok"] and refused["error"] == f"Segment {a} is locked by admin."
    unlock = bob_peer.call(EVENTS["DOJO_LOCK"], segment=a, locked=False)
    assert not unlock["ok"]
    assert alice_peer.edit("merge", 0, segments=[a, b])["ok"]
    alice_peer.close()
    bob_peer.close()


def test_retry_with_same_transaction_id_is_idempotent(dojo_server) -> None:  # type: ignore[no-untyped-def]
    server, admin, dataset = dojo_server
    peer = Peer(server, admin, dataset)
    a, _ = largest_segments(server, admin, dataset, 2)
    first = peer.edit("paint", 0, txid="stroke-1", z=1, points=[[9, 9]], radius=2, segment=a)
    retry = peer.edit("paint", 0, txid="stroke-1", z=1, points=[[9, 9]], radius=2, segment=a)
    assert first["edit"]["version"] == retry["edit"]["version"] == 1
    history = admin.get(f"{server.base}/dojo/api/{dataset}/history?since=0").json()["edits"]
    assert [e["version"] for e in history] == [1]
    peer.close()


def test_bad_requests_get_clear_answers(dojo_server) -> None:  # type: ignore[no-untyped-def]
    server, admin, dataset = dojo_server
    peer = Peer(server, admin, dataset)
    assert "Unknown edit" in peer.edit("explode", 0)["error"]
    assert "radius" in peer.edit("paint", 0, z=1, points=[[1, 1]], radius=-1, segment=1)["error"]
    assert peer.call(EVENTS["DOJO_UNDO"], txid="u")["error"] == "Nothing to undo."
    viewer = requests.Session()
    admin.post(
        f"{server.base}/api/users",
        json={"name": "vera", "password": "password-vera", "role": "viewer"},
    )
    viewer.post(f"{server.base}/login", data={"name": "vera", "password": "password-vera"})
    looker = Peer(server, viewer, dataset)
    assert "role" in looker.edit("merge", 0, segments=[1, 2])["error"]
    peer.close()
    looker.close()


def test_acknowledged_edits_survive_sigkill(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A client streams paint strokes; the server is killed; every acknowledged edit is
    there after a restart and the volume is consistent with the log."""
    server = start_server(tmp_path / "ws")
    admin = server.admin_session()
    dataset = create_demo(server, admin)
    peer = Peer(server, admin, dataset)
    (segment,) = largest_segments(server, admin, dataset, 1)
    acknowledged: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        version, i = 0, 0
        while not stop.is_set():
            try:
                answer = peer.edit(
                    "paint",
                    None,
                    z=i % 30,
                    points=[[10 + i % 300, 10]],
                    radius=3,
                    segment=segment if i % 2 else 0,
                )
            except Exception:
                return
            if answer.get("ok"):
                version = answer["edit"]["version"]
                acknowledged.append(version)
            i += 1

    writer = threading.Thread(target=stream)
    writer.start()
    time.sleep(2.0)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    stop.set()
    writer.join(timeout=10)
    assert len(acknowledged) > 5, "too few edits to test anything"

    restarted = start_server(tmp_path / "ws")
    try:
        session = restarted.admin_session()
        history = session.get(f"{restarted.base}/dojo/api/{dataset}/history?since=0").json()
        versions = {e["version"] for e in history["edits"]}
        assert set(acknowledged) <= versions
        assert_volume_matches_log(tmp_path / "ws", dataset)
    finally:
        stop_server(restarted)


def assert_volume_matches_log(workspace_path, dataset: str) -> None:  # type: ignore[no-untyped-def]
    """Re-apply every logged patch's `after` in order on top of each patch's `before`: the
    stored level-0 voxels inside the patched boxes must equal the last write."""
    from unem.proofread.voxels import VoxelPatch
    from unem.workspace import Workspace

    ws = Workspace(workspace_path)
    labels = zarr.open_array(str(ws.dataset_dir(dataset) / "segmentation.zarr" / "0"))[:]
    expected = labels.copy()
    rows = ws.db.execute(
        "select patch from edits where dataset_id = ? and patch is not null order by version",
        [dataset],
    ).fetchall()
    for (blob,) in rows:
        patch = VoxelPatch.decode(blob)
        expected[patch.box.slices] = patch.after
    assert np.array_equal(labels, expected)
