"""Helpers of the web tests: route enumeration, small stacks, role clients, task waiting."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import Any

import engineio
import numpy as np
import pytest
import socketio
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import login

PASSWORD = "correct horse battery"
ROUTE_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
DUMMY_VALUES = {"int": "1", "float": "1.5", "path": "some/path", "uuid": "0" * 32}


def fill_route(rule: str) -> str:
    """The rule with every argument replaced by a dummy value of its converter."""
    return ROUTE_ARGUMENT.sub(lambda m: DUMMY_VALUES.get(m["converter"] or "", "dummy"), rule)


def api_routes(app: Flask, methods: set[str] | None = None) -> list[tuple[str, str, str]]:
    """(method, url with dummy arguments, endpoint) of every API route, health excepted.

    API routes are `/api/...` and the tools' own (`/dojo/api/...`).
    """
    routes = []
    for rule in app.url_map.iter_rules():
        if "/api/" not in rule.rule or rule.endpoint == "api_health":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if methods is None or method in methods:
                routes.append((method, fill_route(rule.rule), rule.endpoint))
    return routes


def write_stack(
    path: Path, shape: tuple[int, int, int] = (4, 32, 48), dtype: str = "uint8"
) -> np.ndarray:
    """A small random stack saved as .npy at `path`."""
    array = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return array


def import_small(app: Flask, name: str = "small") -> str:
    """Import a small stack with the core (no web), returning the dataset id."""
    from unem.volumes.datasets import import_dataset
    from unem.volumes.sources import open_source

    ws = app.extensions["unem"].workspace
    path = ws.root / "incoming" / f"{name}.npy"
    write_stack(path)
    return import_dataset(ws, name, {"image": open_source(path)}).id


def wait_for_task(client: FlaskClient, task_id: int, timeout: float = 30) -> dict[str, Any]:
    """Poll /api/tasks until task `task_id` has finished; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = {t["id"]: t for t in client.get("/api/tasks").get_json()["tasks"]}
        if tasks[task_id]["state"] != "running":
            return tasks[task_id]
        time.sleep(0.05)
    raise TimeoutError(f"task {task_id} still running after {timeout} s")


def workspace_entries(app: Flask) -> dict[str, list[str]]:
    """What import or export may have created: dataset rows, volume and temporary folders."""
    ws = app.extensions["unem"].workspace
    return {
        "datasets": [row["id"] for row in ws.db["datasets"].rows],
        "volumes": sorted(p.name for p in ws.volumes.iterdir()),
        "tmp": sorted(p.name for p in (ws.root / "tmp").iterdir()),
        "exports": sorted(p.name for p in ws.exports.iterdir()),
        "tasks": [t.id for t in app.extensions["unem"].tasks.list()],
    }


class _Engine(engineio.Client):  # type: ignore[misc]
    def disconnect(self, abort: bool = False, reason: Any = None) -> None:
        # python-engineio's polling client joins its reader, which can sit in a long-poll for a
        # whole ping interval (25 s) after the server has let go; over WebSocket, its reader
        # thread may take the server's close frame while close() waits 3 s for it. The server
        # answers at once, so neither wait tells us anything: skip both.
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close = functools.partial(ws.close, timeout=0.2)
        super().disconnect(abort=True, reason=reason)


class SocketClient(socketio.Client):  # type: ignore[misc]
    """A real python-socketio client that does not wait for its own threads when it leaves."""

    def __init__(self) -> None:
        super().__init__(reconnection=False, handle_sigint=False)

    def _engineio_client_class(self) -> type[engineio.Client]:
        return _Engine


@pytest.fixture
def viewer_client(app: Flask) -> FlaskClient:
    return login(app, "vera", PASSWORD, "viewer")


@pytest.fixture
def proofreader_client(app: Flask) -> FlaskClient:
    return login(app, "paul", PASSWORD, "proofreader")
