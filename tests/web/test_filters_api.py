"""The filters page's API: the catalog, previews (a PNG within a second), saved pipelines,
who may do what, and the filter-pipeline job through the real job manager."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import ISBI_IMAGES
from tests.web.test_jobs_api import finished, submit
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.volumes.store import open_level

pytestmark = pytest.mark.timeout(120)
STEPS = [
    {"filter": "gaussian", "options": {"sigma": 2}},
    {"filter": "clahe", "options": {"kernel_size": 64}},
    {"filter": "otsu", "options": {}},
    {"filter": "remove-small-objects", "options": {"min_size": 100}},
    {"filter": "label", "options": {}},
]


@pytest.fixture
def isbi(app: Flask) -> str:
    """Four ISBI 2012 slices (512², 8-bit)."""
    files = sorted(ISBI_IMAGES.glob("*.png"))[:4]
    stack = np.stack([np.asarray(Image.open(f)) for f in files])
    ws = app.extensions["unem"].workspace
    return import_dataset(ws, "isbi", {"image": array_source(stack)}, (50, 4, 4)).id


def preview(client: FlaskClient, dataset: str, steps: list[Any], **extra: Any) -> Any:
    body = {"dataset": dataset, "layer": "image", "z": 1, "steps": steps, **extra}
    return client.post("/api/filters/preview", json=body)


def picture(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "image/png" and response.data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(response.data)))


def test_the_catalog_lists_every_filter_with_its_schema(viewer_client: FlaskClient) -> None:
    filters = {f["name"]: f for f in viewer_client.get("/api/filters").get_json()["filters"]}
    assert {"gaussian", "otsu", "watershed", "link-overlap", "relabel"} <= set(filters)
    gaussian = filters["gaussian"]
    assert gaussian["fields"] == ["sigma", "sigma_z"] and gaussian["dims"] == ["2d", "3d"]
    assert gaussian["schema"]["properties"]["sigma"]["exclusiveMinimum"] == 0
    assert filters["watershed"]["three_d"] == "whole" and filters["label"]["three_d"] == "stream"
    assert (
        filters["link-overlap"]["three_d"] == "sequential"
        and filters["median"]["three_d"] == "block"
    )


def test_a_preview_is_a_png_of_the_slice_within_a_second(
    admin_client: FlaskClient, isbi: str
) -> None:
    picture(preview(admin_client, isbi, STEPS))  # warm-up: the first imports scikit-image
    started = time.perf_counter()
    response = preview(admin_client, isbi, STEPS)
    seconds = time.perf_counter() - started
    labels = picture(response)
    assert seconds < 1.0, seconds
    assert labels.shape == (512, 512, 3)  # labels in colours
    assert (
        response.headers["X-Preview-Applied"] == "5"
        and response.headers["X-Preview-Kind"] == "labels"
    )
    assert (
        response.headers["X-Preview-Note"] == "" and response.headers["Cache-Control"] == "no-store"
    )
    original = picture(preview(admin_client, isbi, []))
    source = np.asarray(open_level(admin_client.application.extensions["unem"].workspace
                                   .dataset_dir(isbi) / "image.zarr", "0")[1])  # fmt: skip
    assert np.array_equal(original, source)
    mask = picture(preview(admin_client, isbi, STEPS[:3], box=[0, 0, 100, 300]))
    assert mask.shape == (100, 300) and set(np.unique(mask)) == {0, 255}


def test_a_preview_stops_at_the_first_3d_step(admin_client: FlaskClient, isbi: str) -> None:
    steps = [*STEPS[:3], {"filter": "label", "options": {"dims": "3d"}}, {"filter": "relabel"}]
    response = preview(admin_client, isbi, steps)
    assert set(np.unique(picture(response))) == {0, 255}
    assert response.headers["X-Preview-Applied"] == "3"
    assert response.headers["X-Preview-Note"].startswith("Step 4 (label) works across slices")


def test_bad_previews_say_why(admin_client: FlaskClient, isbi: str) -> None:
    cases = [
        (preview(admin_client, isbi, [{"filter": "median", "options": {"size": 0}}]), 400,
         "Step 1 (median): size: Input should be greater than or equal to 1"),
        (preview(admin_client, isbi, [{"filter": "label"}]), 400,
         "Step 1 (label) takes labels or a mask, but is given an image."),
        (preview(admin_client, isbi, [], z=4), 400, "Slice 4 is outside the layer (0..3)."),
        (preview(admin_client, isbi, [], z="top"), 400, "z is a slice number."),
        (preview(admin_client, isbi, [], box=[1, 2]), 400, "box is [y0, x0, y1, x1]"),
        (preview(admin_client, "nope", []), 404, "nope"),
        (preview(admin_client, isbi, [], layer="prediction"), 404, "no layer 'prediction'"),
    ]  # fmt: skip
    for response, status, message in cases:
        assert response.status_code == status, response.get_json()
        assert message in response.get_json()["error"]
    detail = cases[0][0].get_json()["detail"]
    assert detail == [{"step": 1, "filter": "median", "field": "size",
                       "message": "Input should be greater than or equal to 1"}]  # fmt: skip


def test_saved_pipelines_are_created_listed_read_and_deleted(
    proofreader_client: FlaskClient,
) -> None:
    client = proofreader_client
    assert client.get("/api/pipelines").get_json() == {"pipelines": []}
    saved = client.put("/api/pipelines/cells", json={"steps": STEPS, "description": "cells"})
    assert saved.status_code == 200 and saved.get_json()["saved_by"] == "paul"
    listed = client.get("/api/pipelines").get_json()["pipelines"]
    assert [(p["name"], p["filters"], p["description"]) for p in listed] == [
        ("cells", [s["filter"] for s in STEPS], "cells")
    ]
    read = client.get("/api/pipelines/cells").get_json()
    assert read["format"] == "unem-pipeline" and read["steps"][0]["options"]["sigma"] == 2.0
    assert client.put("/api/pipelines/cells", json=read).status_code == 200  # round trip
    bad = client.put("/api/pipelines/other", json={"steps": [{"filter": "blur"}]})
    assert bad.status_code == 400 and "Step 1: Unknown filter 'blur'" in bad.get_json()["error"]
    assert client.put("/api/pipelines/Bad Name", json={"steps": []}).status_code == 400
    assert client.delete("/api/pipelines/cells").get_json() == {"deleted": "cells"}
    assert client.get("/api/pipelines/cells").status_code == 404
    assert client.delete("/api/pipelines/cells").status_code == 404


def test_viewers_look_and_preview_proofreaders_save_admins_run(
    app: Flask,
    admin_client: FlaskClient,
    proofreader_client: FlaskClient,
    viewer_client: FlaskClient,
    isbi: str,
) -> None:
    assert admin_client.put("/api/pipelines/cells", json={"steps": STEPS}).status_code == 200
    job = {"kind": "filter-pipeline", "options": {"dataset": isbi, "pipeline": "cells"}}
    for client in (viewer_client, proofreader_client):
        assert client.get("/filters").status_code == 200
        assert client.get("/api/filters").status_code == 200
        assert client.get("/api/pipelines/cells").status_code == 200
        picture(preview(client, isbi, STEPS[:2]))
        assert client.post("/api/jobs", json=job).status_code == 403
    refused = [viewer_client.put("/api/pipelines/mine", json={"steps": []}),
               viewer_client.delete("/api/pipelines/cells")]  # fmt: skip
    assert [r.status_code for r in refused] == [403, 403]
    assert proofreader_client.put("/api/pipelines/mine", json={"steps": []}).status_code == 200
    page = viewer_client.get("/filters").get_data(as_text=True)
    assert 'id="run-pipeline" type="button" disabled' in page and 'data-editor="false"' in page
    assert 'href="/filters"' in page  # in the top bar
    assert app.test_client().get("/api/filters").status_code == 401
    assert app.test_client().post("/api/filters/preview", json={}).status_code == 401


def test_the_pipeline_job_makes_a_layer_through_the_job_manager(
    app: Flask, admin_client: FlaskClient, isbi: str
) -> None:
    job = submit(admin_client, "filter-pipeline", dataset=isbi, steps=STEPS, output="cells")
    assert job["title"] == f"Filter {isbi}/image (5 filter steps) into cells"
    done = finished(admin_client, job["id"], timeout=90)
    assert done["state"] == "done", done
    assert done["result"] == {"dataset": isbi, "layer": "cells", "kind": "segmentation",
                              "dtype": "uint32", "steps": 5}  # fmt: skip
    layers = {
        la["name"]: la for la in admin_client.get(f"/api/datasets/{isbi}").get_json()["layers"]
    }
    assert layers["cells"]["kind"] == "segmentation"
    ws = app.extensions["unem"].workspace
    labels = np.asarray(open_level(ws.dataset_dir(isbi) / "cells.zarr", "0")[:])
    previewed = picture(preview(admin_client, isbi, STEPS))
    assert (labels[1] > 0).sum() == (previewed.any(axis=-1)).sum()  # the job did what was shown
    per_slice = [set(np.unique(s[s > 0]).tolist()) for s in labels]
    assert all(len(ids) > 20 for ids in per_slice)
    assert not per_slice[0] & per_slice[1]  # 2D labels: ids unique across slices

    admin_client.put("/api/pipelines/smooth", json={"steps": STEPS[:1]})
    saved = submit(admin_client, "filter-pipeline", dataset=isbi, pipeline="smooth")
    assert finished(admin_client, saved["id"], timeout=90)["result"]["layer"] == "image-smooth"


def test_bad_pipeline_jobs_are_refused_before_a_worker_starts(
    admin_client: FlaskClient, isbi: str
) -> None:
    cases = [
        ({"dataset": isbi}, "Name a saved pipeline or give its steps"),
        ({"dataset": isbi, "pipeline": "nothing"}, "No saved pipeline 'nothing'"),
        ({"dataset": isbi, "steps": [{"filter": "median", "options": {"size": 40}}]},
         "Step 1 (median): size"),
        ({"dataset": isbi, "steps": STEPS, "output": "image"}, "not the one filtered"),
        ({"dataset": isbi, "steps": STEPS, "output_kind": "image"}, "can become a layer of kind"),
        ({"dataset": isbi, "steps": STEPS, "layer": "nothing"}, "no layer 'nothing'"),
        ({"dataset": "nope", "steps": STEPS}, "nope"),
    ]  # fmt: skip
    for options, message in cases:
        response = admin_client.post(
            "/api/jobs", json={"kind": "filter-pipeline", "options": options}
        )
        assert response.status_code == 400, (options, response.get_json())
        assert message in response.get_json()["error"], response.get_json()
    assert admin_client.get("/api/jobs").get_json()["jobs"] == []
