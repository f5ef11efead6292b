"""/api/datasets with the test clients: refused input, tasks and their socket events."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ISBI_IMAGES
from tests.web.conftest import import_small, wait_for_task, workspace_entries, write_stack

ISBI_LABELS = ISBI_IMAGES.parent / "label"


def image(path: object, **more: Any) -> dict[str, Any]:
    return {"name": "x", "layers": {"image": {"path": str(path)}, **more}}


def test_bad_imports_are_refused_before_anything_is_written(
    app: Flask, admin_client: FlaskClient
) -> None:
    root = app.extensions["unem"].workspace.root
    write_stack(root / "float.npy", dtype="float32")
    write_stack(root / "thin.npy", shape=(30, 16, 16))
    before = workspace_entries(app)
    cases = {
        "24 slices but the image has 30": image(
            ISBI_IMAGES, groundtruth={"path": str(ISBI_LABELS)}
        ),
        "is 16×16 but the image is 512×512": image(ISBI_IMAGES, segmentation={"path": "thin.npy"}),
        "needs a name": {**image(ISBI_IMAGES), "name": "  "},
        "image stack": {"name": "x", "layers": {}},
        "layers.groundtruth": image(ISBI_IMAGES, groundtruth="labels.tif"),
        "Unknown layer kind": image(ISBI_IMAGES, mask={"path": str(ISBI_LABELS)}),
        "does not exist": image(root / "missing.tif"),
        "8- or 16-bit": image("float.npy"),
        "Voxel size": {**image(ISBI_IMAGES), "voxel_size": [1, 0, 1]},
        "JSON object": ["not", "an", "object"],
    }
    for message, request in cases.items():
        response = admin_client.post("/api/datasets", json=request)
        assert response.status_code == 400, (message, response.get_json())
        assert message in response.get_json()["error"]
    assert workspace_entries(app) == before


def test_an_import_reports_progress_then_announces_the_dataset(
    app: Flask, admin_client: FlaskClient
) -> None:
    socketio = app.extensions["socketio"]
    listener = socketio.test_client(app, namespace="/datasets", flask_test_client=admin_client)
    assert listener.is_connected("/datasets")
    response = admin_client.post("/api/datasets", json={**image(ISBI_IMAGES), "name": "ISBI"})
    assert response.status_code == 202
    task = wait_for_task(admin_client, response.get_json()["id"])
    assert task["state"] == "done", task
    events = [(e["name"], e["args"][0]) for e in listener.get_received("/datasets")]
    names = [name for name, _ in events]
    assert names[0] == "task:progress" and names[-1] == "task:done"
    assert "datasets:changed" in names
    done = events[-1][1]
    assert done["result"]["id"] == "isbi" and done["result"]["shape"] == [30, 512, 512]
    assert done["step"] == done["total"] == 30
    listener.disconnect(namespace="/datasets")


def test_renames_and_deletes_announce_themselves(app: Flask, admin_client: FlaskClient) -> None:
    dataset = import_small(app)
    listener = app.extensions["socketio"].test_client(
        app, namespace="/datasets", flask_test_client=admin_client
    )
    assert admin_client.patch(f"/api/datasets/{dataset}", json={"name": " "}).status_code == 400
    assert listener.get_received("/datasets") == []
    assert admin_client.patch(f"/api/datasets/{dataset}", json={"name": "B"}).status_code == 200
    assert admin_client.delete(f"/api/datasets/{dataset}").status_code == 200
    assert [e["name"] for e in listener.get_received("/datasets")] == ["datasets:changed"] * 2
    assert admin_client.delete(f"/api/datasets/{dataset}").status_code == 404
    assert admin_client.patch(f"/api/datasets/{dataset}", json={"name": "B"}).status_code == 404


@pytest.mark.parametrize(
    ("request_body", "status"),
    [
        ({"layer": "nope", "format": "npy"}, 404),
        ({"layer": "image", "format": "bmp"}, 400),
    ],
)
def test_bad_exports_are_refused(
    app: Flask, admin_client: FlaskClient, request_body: dict[str, str], status: int
) -> None:
    dataset = import_small(app)
    response = admin_client.post(f"/api/datasets/{dataset}/export", json=request_body)
    assert response.status_code == status
    assert (
        admin_client.post(
            "/api/datasets/nope/export", json={"layer": "image", "format": "npy"}
        ).status_code
        == 404
    )
    assert app.extensions["unem"].tasks.list() == []


def test_an_export_reads_back_exactly(app: Flask, admin_client: FlaskClient) -> None:
    ws = app.extensions["unem"].workspace
    dataset = import_small(app)
    stored = np.load(ws.root / "incoming" / "small.npy")
    response = admin_client.post(
        f"/api/datasets/{dataset}/export", json={"layer": "image", "format": "npy"}
    )
    task = wait_for_task(admin_client, response.get_json()["id"])
    download = admin_client.get(task["result"]["download"])
    assert download.status_code == 200
    (ws.root / "back.npy").write_bytes(download.data)
    np.testing.assert_array_equal(np.load(ws.root / "back.npy"), stored)
