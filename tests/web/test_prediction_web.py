"""Prediction layers over HTTP: Dojo's prediction tiles (and their ETag when the layer is
written anew), and the export API's `dtype`."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import tifffile
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.web.conftest import wait_for_task
from unem.volumes.datasets import import_dataset
from unem.volumes.layers import add_layer
from unem.volumes.sources import array_source

SHAPE = (2, 24, 40)


def prediction_dataset(app: Flask) -> str:
    ws = app.extensions["unem"].workspace
    prob = np.zeros(SHAPE, np.uint8)
    prob[:, :, 20:] = 200
    sources = {
        "image": array_source(np.full(SHAPE, 90, np.uint8)),
        "prediction": array_source(prob),
    }
    return import_dataset(ws, "pred", sources).id


def tile(client: FlaskClient, dataset: str, etag: str | None = None) -> tuple[int, str, Any]:
    headers = {"If-None-Match": etag} if etag else {}
    response = client.get(
        f"/dojo/api/{dataset}/tiles/prediction/0/0/0/0?format=png", headers=headers
    )
    ok = response.status_code == 200
    values = np.asarray(Image.open(io.BytesIO(response.data))) if ok else None
    return response.status_code, response.headers["ETag"], values


def test_prediction_tiles_and_their_etag_after_the_layer_is_written_again(
    app: Flask, admin_client: FlaskClient
) -> None:
    dataset = prediction_dataset(app)
    status, etag, values = tile(admin_client, dataset)
    assert status == 200 and values[0, 0] == 0 and values[0, 30] == 200
    assert tile(admin_client, dataset, etag)[0] == 304
    ws = app.extensions["unem"].workspace
    # A new inference overwrites the layer: browsers must not keep the old tiles.
    time.sleep(1.1)  # layer times have whole seconds
    add_layer(
        ws,
        dataset,
        "prediction",
        "prediction",
        "uint8",
        iter(np.full(SHAPE, 77, np.uint8)),
        "again",
        overwrite=True,
    )
    status, new_etag, values = tile(admin_client, dataset, etag)
    assert status == 200 and new_etag != etag and (values == 77).all()


def test_the_export_api_converts_a_prediction_to_16_bits(
    app: Flask, admin_client: FlaskClient
) -> None:
    dataset = prediction_dataset(app)
    response = admin_client.post(
        f"/api/datasets/{dataset}/export",
        json={"layer": "prediction", "format": "tiff-multipage", "dtype": "uint16"},
    )
    assert response.status_code == 202
    task = wait_for_task(admin_client, response.get_json()["id"])
    assert task["state"] == "done", task
    back = tifffile.imread(io.BytesIO(admin_client.get(task["result"]["download"]).data))
    assert back.dtype == np.uint16 and back.max() == 200 * 257
    refused = admin_client.post(
        f"/api/datasets/{dataset}/export",
        json={"layer": "prediction", "format": "tiff", "dtype": "int7"},
    )
    assert refused.status_code == 400 and "Unknown export type" in refused.get_json()["error"]
