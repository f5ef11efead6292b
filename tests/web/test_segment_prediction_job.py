"""The segment-prediction job through the real job manager (a worker process), then Dojo on
the segmentation it made: state, segment table, tiles, history and live edits."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.test_jobs_api import finished, submit
from unem.proofread.edits import prepare_for_proofreading, proofreader
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.web.events import EVENTS, NAMESPACES

pytestmark = pytest.mark.timeout(90)
DOJO = NAMESPACES["DOJO"]
SHAPE = (3, 64, 96)


def cells() -> np.ndarray:
    """A membrane probability (uint8): lines cutting each slice into 2 × 3 cells."""
    prob = np.full(SHAPE, 10, np.uint8)
    prob[:, 31:33] = 245
    prob[:, :, 31:33] = 245
    prob[:, :, 63:65] = 245
    return prob


@pytest.fixture
def dataset(app: Flask) -> str:
    ws = app.extensions["unem"].workspace
    image = np.full(SHAPE, 120, np.uint8)
    old = np.ones(SHAPE, np.uint32)
    old[:, :, 48:] = 2
    sources = {
        "image": array_source(image),
        "segmentation": array_source(old),
        "prediction": array_source(cells()),
    }
    made = import_dataset(ws, "cells", sources, (40.0, 4.0, 4.0))
    prepare_for_proofreading(ws, made.id)
    return made.id


@pytest.fixture
def dojo(app: Flask, admin_client: FlaskClient, dataset: str) -> Iterator[Any]:
    sockets = app.extensions["socketio"].test_client(
        app, namespace=DOJO, flask_test_client=admin_client
    )
    joined = sockets.emit(
        EVENTS["DOJO_JOIN"], {"dataset": dataset, "version": 0}, namespace=DOJO, callback=True
    )
    assert joined["ok"] and joined["version"] == 0
    yield sockets
    if sockets.is_connected(DOJO):
        sockets.disconnect(namespace=DOJO)


def label_tile(client: FlaskClient, dataset: str) -> np.ndarray:
    response = client.get(f"/dojo/api/{dataset}/tiles/segmentation/0/1/0/0")
    assert response.status_code == 200 and response.headers["X-Dtype"] == "uint32"
    return np.frombuffer(zlib.decompress(response.data), "<u4").reshape(SHAPE[1:])


def test_the_job_makes_a_segmentation_dojo_opens_and_edits(
    app: Flask, admin_client: FlaskClient, dataset: str, dojo: Any
) -> None:
    before = label_tile(admin_client, dataset)
    old_etag = admin_client.get(f"/dojo/api/{dataset}/tiles/segmentation/0/1/0/0").headers["ETag"]
    job = submit(admin_client, "segment-prediction", dataset=dataset, mode="2d")
    assert job["title"] == f"Segment {dataset}/prediction for proofreading"
    done = finished(admin_client, job["id"], timeout=60)
    assert done["state"] == "done", done
    result = done["result"]
    assert result["version"] == 1 and result["fragments"] == 18  # 6 cells on 3 slices
    assert result["kept"].startswith("segmentation-before-")

    layers = {
        layer["name"]: layer
        for layer in admin_client.get(f"/api/datasets/{dataset}").get_json()["layers"]
    }
    assert layers[result["kept"]]["kind"] == "segmentation"
    kept = admin_client.get(f"/dojo/api/{dataset}/tiles/{result['kept']}/0/1/0/0")
    assert np.array_equal(
        np.frombuffer(zlib.decompress(kept.data), "<u4").reshape(SHAPE[1:]), before
    )

    # Dojo's HTTP side shows the new segmentation at once.
    state = admin_client.get(f"/dojo/api/{dataset}/state").get_json()
    assert state["version"] == 1 and state["mapping"] == {}
    table = admin_client.get(f"/dojo/api/{dataset}/segments").get_json()
    assert table["total"] == 18
    tile = label_tile(admin_client, dataset)
    assert len(np.unique(tile)) == 6 and 0 not in tile  # a watershed of cells tiles the slice
    again = admin_client.get(
        f"/dojo/api/{dataset}/tiles/segmentation/0/1/0/0", headers={"If-None-Match": old_etag}
    )
    assert again.status_code == 200  # the browser's cached tile is stale now
    history = admin_client.get(f"/dojo/api/{dataset}/history").get_json()["edits"]
    assert [(e["version"], e["kind"], e["user"]) for e in history] == [(1, "replace", "admin")]
    assert history[0]["payload"]["kept"] == result["kept"]

    # A client that joined before catches up with `since`, then edits the new segments.
    since = dojo.emit(
        EVENTS["DOJO_SINCE"], {"dataset": dataset, "since": 0}, namespace=DOJO, callback=True
    )
    assert [e["kind"] for e in since["edits"]] == ["replace"]
    a, b = (int(v) for v in tile[10, [10, 50]])
    merged = dojo.emit(
        EVENTS["DOJO_EDIT"],
        {
            "dataset": dataset,
            "kind": "merge",
            "params": {"segments": [a, b]},
            "txid": "m1",
            "base_version": 1,
        },
        namespace=DOJO,
        callback=True,
    )
    assert merged["ok"], merged
    assert merged["edit"]["version"] == 2 and merged["edit"]["mapping"] == {str(b): a}


def test_a_locked_segment_refuses_the_job_at_submission(
    app: Flask, admin_client: FlaskClient, dataset: str
) -> None:
    ws = app.extensions["unem"].workspace
    proofreader(ws, dataset).set_lock("bob", 2, True)
    response = admin_client.post(
        "/api/jobs", json={"kind": "segment-prediction", "options": {"dataset": dataset}}
    )
    assert response.status_code == 409
    assert "locked by bob" in response.get_json()["error"]
    options = {"dataset": dataset, "layer": "nope"}
    wrong = admin_client.post("/api/jobs", json={"kind": "segment-prediction", "options": options})
    assert wrong.status_code == 400 and "no layer 'nope'" in wrong.get_json()["error"]
    assert admin_client.get("/api/jobs").get_json()["jobs"] == []


def test_the_kind_is_listed_with_its_schema(admin_client: FlaskClient) -> None:
    kinds = {k["name"]: k for k in admin_client.get("/api/jobs/kinds").get_json()["kinds"]}
    schema = kinds["segment-prediction"]["schema"]["properties"]
    assert schema["dataset"]["x-unem-choices"] == "dataset"
    assert schema["layer"]["x-unem-choices"] == "layer" and schema["layer"]["default"] == (
        "prediction"
    )
    assert schema["method"]["enum"] == ["watershed", "threshold"]
    assert kinds["segment-prediction"]["fields"][:3] == ["dataset", "layer", "boundary"]
