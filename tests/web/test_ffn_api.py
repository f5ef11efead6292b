"""The FFN page's API: preparations (listed with the training geometry they imply, deleted
by admins only, never from under a training job), trained FFN models, the segmentations
FFN jobs made; and the page itself, read-only for non-admins."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from unem.ffn.options import FFNPrepOptions
from unem.ffn.prep import prepare
from unem.jobs.table import now
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

FFN_INFO = {"kind": "ffn", "fov": [9, 17, 17], "deltas": [2, 4, 4], "depth": 3, "features": 16,
            "preset": "cpu_tiny", "steps": 40, "preparation": "rods",
            "created_at": "2024-05-02T10:00:00+00:00"}  # fmt: skip
UNET_INFO = {"model": "unet", "channels": 1, "n_classes": 2,
             "created_at": "2024-05-01T10:00:00+00:00"}  # fmt: skip


def rods_dataset(ws: Workspace, name: str = "rods") -> str:
    """Five bright rods along x, 16×40×40 voxels, with their ground truth."""
    rng = np.random.default_rng(0)
    labels = np.zeros((16, 40, 40), dtype=np.uint32)
    for i, y in enumerate(range(4, 40, 8)):
        labels[:, y : y + 5, :] = i + 1
    image = np.where(labels > 0, 170, 60) + rng.integers(0, 20, labels.shape)
    sources = {"image": array_source(image.astype(np.uint8)), "groundtruth": array_source(labels)}
    return import_dataset(ws, name, sources).id


def prepared(app: Flask, name: str = "rods", **options: Any) -> str:
    ws: Workspace = app.extensions["unem"].workspace
    dataset = rods_dataset(ws)
    settings = {"dataset": dataset, "preset": "cpu_tiny", "min_size": 100, **options}
    prepare(ws, FFNPrepOptions.model_validate(settings), name, log=lambda _: None)
    return dataset


def add_model(app: Flask, name: str, info: dict[str, Any]) -> None:
    folder = app.extensions["unem"].workspace.root / "models" / name
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"PK not really keras")
    (folder / "model.json").write_text(json.dumps(info))


def add_job(app: Flask, kind: str, state: str, options: dict[str, Any], result: Any = None) -> int:
    """A job row in `state`, written directly: the runner only starts queued jobs."""
    table = app.extensions["unem"].workspace.db["jobs"]
    table.insert({"kind": kind, "title": kind, "options": json.dumps(options), "resource": "cpu",
                  "resumable": 0, "state": state, "user": "admin", "created_at": now(),
                  "finished_at": now() if state == "done" else None,
                  "result": json.dumps(result) if result is not None else None})  # fmt: skip
    return int(table.last_pk or 0)


def test_preparations_are_listed_with_their_training_geometry(
    app: Flask, admin_client: FlaskClient, viewer_client: FlaskClient
) -> None:
    assert viewer_client.get("/api/ffn/preparations").get_json() == {"preparations": []}
    dataset = prepared(app, "rods")
    prepared_again = prepared(app, "rods-wide", fov=[7, 17, 17], deltas=[1, 4, 4])
    listed = viewer_client.get("/api/ffn/preparations").get_json()["preparations"]
    by_name = {p["name"]: p for p in listed}  # newest first, to the second
    assert set(by_name) == {"rods", "rods-wide"}
    rods = by_name["rods"]
    assert rods["dataset"] == dataset and rods["label_layer"] == "groundtruth"
    assert rods["objects"] == 5 and rods["coordinates"] > 0
    assert rods["fov"] == [9, 17, 17] and rods["box"] == [[0, 16], [0, 40], [0, 40]]
    assert rods["train_defaults"] == {"preset": "cpu_tiny"}  # the preset's own geometry
    wide = by_name["rods-wide"]
    assert wide["dataset"] == prepared_again
    assert wide["train_defaults"] == {"preset": "cpu_tiny", "fov": [7, 17, 17], "deltas": [1, 4, 4]}


def test_only_admins_delete_a_preparation_and_never_one_in_training(
    app: Flask,
    admin_client: FlaskClient,
    viewer_client: FlaskClient,
    proofreader_client: FlaskClient,
) -> None:
    prepared(app, "rods")
    folder = app.extensions["unem"].workspace.root / "ffn" / "preparations" / "rods"
    for client in (viewer_client, proofreader_client):
        refused = client.delete("/api/ffn/preparations/rods")
        assert refused.status_code == 403 and "role" in refused.get_json()["error"]
    assert folder.is_dir()

    job = add_job(app, "ffn-train", "running", {"preparation": "rods", "preset": "cpu_tiny"})
    busy = admin_client.delete("/api/ffn/preparations/rods")
    assert busy.status_code == 409
    assert f"#{job}" in busy.get_json()["error"] and folder.is_dir()
    app.extensions["unem"].workspace.db["jobs"].update(job, {"state": "done"})

    assert admin_client.delete("/api/ffn/preparations/rods").get_json() == {"deleted": "rods"}
    assert not folder.exists()
    assert admin_client.get("/api/ffn/preparations").get_json() == {"preparations": []}
    missing = admin_client.delete("/api/ffn/preparations/rods")
    assert missing.status_code == 404 and "none yet" in missing.get_json()["error"]


def test_ffn_models_are_listed_apart_downloaded_and_deleted_by_admins(
    app: Flask,
    admin_client: FlaskClient,
    viewer_client: FlaskClient,
    proofreader_client: FlaskClient,
) -> None:
    assert viewer_client.get("/api/ffn/models").get_json() == {"models": []}
    add_model(app, "rods-ffn", FFN_INFO)
    add_model(app, "membranes", UNET_INFO)
    models = viewer_client.get("/api/ffn/models").get_json()["models"]
    assert [m["name"] for m in models] == ["rods-ffn"]
    assert models[0]["fov"] == [9, 17, 17] and models[0]["files"] == ["model.keras"]
    trainer = viewer_client.get("/api/trained-models").get_json()["models"]
    assert [m["name"] for m in trainer] == ["membranes"]  # the trainer's are 2D models only

    download = viewer_client.get("/api/ffn/models/rods-ffn/files/model.keras")
    assert download.status_code == 200 and download.data == b"PK not really keras"
    assert "rods-ffn-model.keras" in download.headers["Content-Disposition"]
    for path in (
        "rods-ffn/files/model.json",
        "rods-ffn/files/..%2Fmembranes",
        "membranes/files/model.keras",
    ):
        assert viewer_client.get(f"/api/ffn/models/{path}").status_code == 404

    for client in (viewer_client, proofreader_client):
        assert client.delete("/api/ffn/models/rods-ffn").status_code == 403
    job = add_job(app, "ffn-infer", "running", {"model": "rods-ffn", "dataset": "d"})
    busy = admin_client.delete("/api/ffn/models/rods-ffn")
    assert busy.status_code == 409 and f"#{job}" in busy.get_json()["error"]
    app.extensions["unem"].workspace.db["jobs"].update(job, {"state": "cancelled"})
    assert admin_client.delete("/api/ffn/models/rods-ffn").get_json() == {"deleted": "rods-ffn"}
    assert viewer_client.get("/api/ffn/models").get_json() == {"models": []}
    assert admin_client.delete("/api/ffn/models/membranes").status_code == 404  # not an FFN
    assert (app.extensions["unem"].workspace.root / "models" / "membranes").is_dir()


def test_segmentations_say_where_they_went_and_which_are_current(
    app: Flask, viewer_client: FlaskClient
) -> None:
    ws: Workspace = app.extensions["unem"].workspace
    dataset = rods_dataset(ws)
    figures = {"objects": 4, "voxels": 12800, "voxels_per_second": 900.0, "model_share": 0.8}
    written = {"dataset": dataset, "layer": "segmentation", "probability_layer": "ffn-probability"}
    older = add_job(app, "ffn-infer", "done", {"model": "m", "dataset": dataset, "box": ""},
                    {**written, **figures})  # fmt: skip
    add_job(app, "ffn-infer", "failed", {"model": "m", "dataset": dataset})
    add_job(app, "ffn-prep", "done", {"dataset": dataset}, {"preparation": "p"})
    boxed = {"model": "m2", "dataset": dataset, "box": "2:-2,:,5:"}
    newer = add_job(app, "ffn-infer", "done", boxed, {**written, **figures})
    found = viewer_client.get("/api/ffn/segmentations").get_json()["segmentations"]
    assert [s["job"] for s in found] == [newer, older]
    assert found[0]["box"] == [2, 0, 5, 14, 40, 40] and found[1]["box"] == [0, 0, 0, 16, 40, 40]
    assert found[0]["dataset_name"] == "rods" and found[0]["model"] == "m2"
    assert found[0]["objects"] == 4 and found[0]["model_share"] == 0.8
    assert [s["current"] for s in found] == [True, False]  # the newer run replaced the older
    elsewhere = {**written, "layer": "ffn-test", "probability_layer": None}
    gone = add_job(app, "ffn-infer", "done", {"model": "m", "dataset": dataset}, elsewhere)
    found = viewer_client.get("/api/ffn/segmentations").get_json()["segmentations"]
    assert (found[0]["job"], found[0]["current"]) == (gone, False)  # no such layer


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_the_page_shows_four_steps_read_only_for_non_admins(
    role: str, request: pytest.FixtureRequest
) -> None:
    client: FlaskClient = request.getfixturevalue(f"{role}_client")
    html = client.get("/ffn").get_data(as_text=True)
    for title in ("Prepare training data", "Train", "Segment", "Proofread, export, evaluate"):
        assert title in html
    assert 'href="/ffn"' in html  # in the top bar
    assert ('id="read-only-note"' in html) == (role == "viewer")
    assert (f'data-admin="{"true" if role == "admin" else "false"}"') in html
    assert ("disabled" in html.split('id="start-prep"')[1].split(">")[0]) == (role == "viewer")


def test_anonymous_visitors_see_nothing(client: FlaskClient) -> None:
    for path in ("/api/ffn/preparations", "/api/ffn/models", "/api/ffn/segmentations"):
        assert client.get(path).status_code == 401
    assert client.delete("/api/ffn/preparations/x").status_code in (401, 403)
    assert client.get("/ffn").status_code in (302, 401)
