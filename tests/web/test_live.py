"""The real server: a subprocess, a SQLite file, HTTP by requests, a real Socket.IO client."""

from __future__ import annotations

import io
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import socketio
import tifffile
from PIL import Image

from tests.conftest import ISBI_IMAGES, LiveServer, start_server, stop_server
from tests.web.conftest import SocketClient, write_stack

ISBI_LABELS = ISBI_IMAGES.parent / "label"
TIMEOUT = 30
# WebSocket by default, as the browser does; long polling is checked too.
POLLING, WEBSOCKET = ["polling"], ["websocket"]


class Listener:
    """A Socket.IO client that queues every event of the namespaces it joined."""

    def __init__(
        self,
        server: LiveServer,
        session: requests.Session | None,
        namespaces: list[str],
        transports: list[str] = WEBSOCKET,
    ) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = SocketClient()
        for namespace in namespaces:
            self.client.on("*", self._record, namespace=namespace)
        cookie = session.cookies.get("unem_session") if session else None
        headers = {"Cookie": f"unem_session={cookie}"} if cookie else {}
        self.client.connect(
            server.base,
            headers=headers,
            namespaces=namespaces,
            transports=transports,
            wait_timeout=10,
        )

    def _record(self, event: str, payload: Any = None) -> None:
        self.events.put((event, payload))

    def wait_for(self, event: str, match: Any = None) -> tuple[Any, list[tuple[str, Any]]]:
        """The payload of the next `event` (for which `match(payload)` holds) and all before."""
        seen = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                name, payload = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append((name, payload))
            if name == event and (match is None or match(payload)):
                return payload, seen
        raise TimeoutError(f"no {event} event in {TIMEOUT} s; saw {seen}")

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("live") / "ws")
    yield live
    assert stop_server(live) == 0, "".join(live.output)


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> requests.Session:
    return server.admin_session()


def socket_namespaces() -> list[str]:
    """Every namespace the app serves, read from an app built here (new ones are covered too)."""
    import tempfile

    from unem.web import create_app

    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"workspace": folder})
        try:
            sio = app.extensions["socketio"].server
            return sorted({*sio.handlers, *sio.namespace_handlers})
        finally:
            app.extensions["unem"].shutdown()


def test_the_namespaces_include_the_home_page() -> None:
    assert {"/", "/datasets"} <= set(socket_namespaces())


@pytest.mark.parametrize("namespace", socket_namespaces())
def test_sockets_refuse_strangers(server: LiveServer, namespace: str) -> None:
    forged = requests.Session()
    forged.cookies.set("unem_session", "forged.cookie.value")
    for session in (None, forged):
        for transports in (WEBSOCKET, POLLING):
            with pytest.raises(socketio.exceptions.ConnectionError, match="failed to connect"):
                Listener(server, session, [namespace], transports)


@pytest.mark.parametrize("namespace", socket_namespaces())
def test_sockets_accept_the_admin(
    server: LiveServer, admin: requests.Session, namespace: str
) -> None:
    for transports in (WEBSOCKET, POLLING):
        listener = Listener(server, admin, [namespace], transports)
        try:
            assert listener.client.connected
            assert listener.client.transport() == transports[0]
            assert namespace in listener.client.namespaces
        finally:
            listener.close()


def import_request(
    server: LiveServer, session: requests.Session, body: dict[str, Any]
) -> requests.Response:
    return session.post(f"{server.base}/api/datasets", json=body, timeout=TIMEOUT)


def test_renames_and_deletes_reach_connected_clients(
    server: LiveServer, admin: requests.Session
) -> None:
    write_stack(server.workspace / "incoming" / "tiny.npy")
    listener = Listener(server, admin, ["/datasets"])
    try:
        response = import_request(
            server, admin, {"name": "tiny", "layers": {"image": {"path": "incoming/tiny.npy"}}}
        )
        assert response.status_code == 202, response.text
        done, _ = listener.wait_for("task:done", lambda t: t["id"] == response.json()["id"])
        dataset = done["result"]["id"]
        response = admin.patch(
            f"{server.base}/api/datasets/{dataset}", json={"name": "Tiny"}, timeout=TIMEOUT
        )
        assert response.status_code == 200
        listener.wait_for("datasets:changed")
        assert (
            admin.delete(f"{server.base}/api/datasets/{dataset}", timeout=TIMEOUT).status_code
            == 200
        )
        listener.wait_for("datasets:changed")
        assert not (server.workspace / "volumes" / dataset).exists()
    finally:
        listener.close()


def test_an_import_runs_end_to_end(server: LiveServer, admin: requests.Session) -> None:
    listener = Listener(server, admin, ["/datasets"])
    try:
        response = import_request(
            server,
            admin,
            {
                "name": "ISBI 2012",
                "voxel_size": [50, 4, 4],
                "layers": {"image": {"path": str(ISBI_IMAGES)}},
            },
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        done, seen = listener.wait_for("task:done", lambda t: t["id"] == task_id)
    finally:
        listener.close()
    progress = [p for name, p in seen if name == "task:progress" and p["id"] == task_id]
    assert progress and all(0 < p["step"] <= p["total"] == 30 for p in progress)
    dataset = done["result"]
    assert dataset["shape"] == [30, 512, 512] and dataset["voxel_size"] == [50, 4, 4]

    listed = admin.get(f"{server.base}/api/datasets", timeout=TIMEOUT).json()["datasets"]
    entry = next(d for d in listed if d["id"] == dataset["id"])
    assert entry["name"] == "ISBI 2012" and entry["size_bytes"] > 0
    thumbnail = admin.get(server.base + entry["thumbnail"], timeout=TIMEOUT)
    assert thumbnail.headers["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(thumbnail.content))
    picture.verify()
    assert picture.format == "PNG" and max(picture.size) <= 256

    exported = export(server, admin, dataset["id"], "tiff-multipage")
    expected = np.stack([np.asarray(Image.open(p)) for p in sorted(ISBI_IMAGES.glob("*.png"))])
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(exported)), expected)
    assert_no_tensorflow(server)


def export(server: LiveServer, session: requests.Session, dataset: str, fmt: str) -> bytes:
    """Export the image layer through the API, wait for the task, download the result."""
    listener = Listener(server, session, ["/datasets"])
    try:
        response = session.post(
            f"{server.base}/api/datasets/{dataset}/export",
            json={"layer": "image", "format": fmt},
            timeout=TIMEOUT,
        )
        assert response.status_code == 202, response.text
        done, _ = listener.wait_for("task:done", lambda t: t["id"] == response.json()["id"])
    finally:
        listener.close()
    download = session.get(server.base + done["result"]["download"], timeout=TIMEOUT)
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    return download.content


def assert_no_tensorflow(server: LiveServer) -> None:
    """TensorFlow loads native libraries when imported: none may be mapped in the server."""
    maps = Path(f"/proc/{server.process.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc on this system")
    libraries = {line.split()[-1] for line in maps.read_text().splitlines() if "/" in line}
    assert not [lib for lib in libraries if "tensorflow" in lib or "keras" in lib]
    assert any("python" in lib for lib in libraries)  # the check reads the right process


def test_mismatched_stacks_are_refused_with_a_message(
    server: LiveServer, admin: requests.Session
) -> None:
    before = admin.get(f"{server.base}/api/datasets", timeout=TIMEOUT).json()
    response = import_request(
        server,
        admin,
        {
            "name": "mismatch",
            "layers": {
                "image": {"path": str(ISBI_IMAGES)},
                "groundtruth": {"path": str(ISBI_LABELS)},
            },
        },
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("The groundtruth has 24 slices but the image has 30")
    assert admin.get(f"{server.base}/api/datasets", timeout=TIMEOUT).json() == before
    assert not any(p.name.startswith("mismatch") for p in (server.workspace / "volumes").iterdir())
    assert list((server.workspace / "tmp").iterdir()) == []


def test_strangers_get_401_from_the_real_server(server: LiveServer) -> None:
    stranger = requests.Session()
    assert stranger.get(f"{server.base}/api/health", timeout=TIMEOUT).status_code == 200
    for method, path in (
        ("GET", "/api/datasets"),
        ("POST", "/api/datasets"),
        ("DELETE", "/api/users/admin"),
        ("GET", "/api/exports/x.tif"),
    ):
        response = stranger.request(method, server.base + path, json={}, timeout=TIMEOUT)
        assert (response.status_code, "error" in response.json()) == (401, True), path
    page = stranger.get(f"{server.base}/?token=wrong", timeout=TIMEOUT, allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert "unem_session" not in stranger.cookies


def test_the_token_login_removes_the_token_from_the_address(server: LiveServer) -> None:
    session = requests.Session()
    response = session.get(server.admin_url, timeout=TIMEOUT)
    assert response.status_code == 200 and response.url == f"{server.base}/"
    assert response.history[0].status_code == 302
    assert session.get(f"{server.base}/api/me", timeout=TIMEOUT).json()["role"] == "admin"
