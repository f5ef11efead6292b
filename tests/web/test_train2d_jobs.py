"""The trainer's jobs through the real job manager: train a U-Net on ISBI 2012 membranes in a
worker process, see its curves in TensorBoard's event files, predict a prediction layer,
export the model, and refuse what cannot work before a worker starts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ISBI_IMAGES
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import open_source
from unem.volumes.store import open_level

pytestmark = pytest.mark.timeout(600)


def finished(client: FlaskClient, job_id: int, timeout: float = 500) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").get_json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still active")


def submit(client: FlaskClient, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/jobs", json={"kind": kind, "options": options})
    assert response.status_code == 201, response.get_json()
    job: dict[str, Any] = response.get_json()
    return job


@pytest.fixture
def isbi(app: Flask, data: Path, tmp_path: Path) -> str:
    """Eight labelled ISBI slices (image + membrane labels: 0 = membrane)."""
    labels = data / "isbi2012_drosophila_vnc" / "train" / "label"
    chosen = sorted(p.name for p in labels.glob("*.png"))[:8]
    for name, folder in (("image", ISBI_IMAGES), ("label", labels)):
        (tmp_path / name).mkdir()
        for file in chosen:
            shutil.copy(folder / file, tmp_path / name / file)
    ws = app.extensions["unem"].workspace
    sources = {
        "image": open_source(tmp_path / "image"),
        "groundtruth": open_source(tmp_path / "label"),
    }
    return import_dataset(ws, "isbi", sources, (50, 4, 4)).id


def scalar_tags(folder: Path) -> set[str]:
    """Tags of the scalars in a run's event files (TensorBoard's own reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


def test_train_predict_and_export_on_isbi_membranes(
    app: Flask, admin_client: FlaskClient, isbi: str
) -> None:
    training = {
        "dataset": isbi,
        "label_layer": "groundtruth",
        "target": "binary_inverted",  # ISBI labels: 0 = membrane, our class 1
        "model": "unet",
        "model_options": {"depth": 2, "base_filters": 8},
        "patch_size": 96,
        "batch_size": 4,
        "steps": 60,
        "validate_every": 20,
        "learning_rate": 0.003,
        "output": "isbi-membranes",
    }
    job = submit(admin_client, "train2d", training)
    assert job["title"] == f"Train unet on {isbi}/groundtruth"
    done = finished(admin_client, job["id"])
    assert done["state"] == "done", done["log_tail"]
    assert done["result"]["model"] == "isbi-membranes" and done["result"]["steps"] == 60
    assert {"loss", "val_loss", "val_dice"} <= set(done["metrics"])
    ws = app.extensions["unem"].workspace
    run = ws.root / "jobs" / str(job["id"]) / "tensorboard"
    assert {"loss", "val_loss", "val_dice"} <= scalar_tags(run)
    assert list((run / "images").glob("events.out.tfevents.*"))

    predict = submit(
        admin_client,
        "infer2d",
        {"model": "isbi-membranes", "dataset": isbi, "slices": "6-7", "tile_size": 256},
    )
    predicted = finished(admin_client, predict["id"])
    assert predicted["state"] == "done", predicted["log_tail"]
    layers = admin_client.get(f"/api/datasets/{isbi}").get_json()["layers"]
    assert {"name": "prediction", "kind": "prediction"}.items() <= next(
        layer for layer in layers if layer["name"] == "prediction"
    ).items()
    prediction = np.asarray(open_level(ws.dataset_dir(isbi) / "prediction.zarr", "0")[6:8])
    membranes = np.asarray(open_level(ws.dataset_dir(isbi) / "groundtruth.zarr", "0")[6:8]) == 0
    # Sixty CPU steps already tell membranes (dark, thin) from cell interiors.
    assert prediction[membranes].mean() > prediction[~membranes].mean() + 30

    export = submit(admin_client, "export2d", {"model": "isbi-membranes", "format": "onnx"})
    exported = finished(admin_client, export["id"])
    assert exported["state"] == "done", exported["log_tail"]
    onnx_file = ws.root / "models" / "isbi-membranes" / "model.onnx"
    assert onnx_file.stat().st_size == exported["result"]["bytes"] > 10_000
    assert_onnx_matches_keras(onnx_file, onnx_file.with_name("model.keras"))


def assert_onnx_matches_keras(onnx_file: Path, keras_file: Path) -> None:
    """The exported graph computes what the Keras model does (ONNX Runtime vs Keras)."""
    import keras
    import onnxruntime

    tiles = np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32)
    expected = np.asarray(keras.models.load_model(keras_file, compile=False)(tiles))
    session = onnxruntime.InferenceSession(str(onnx_file))
    (got,) = session.run(None, {session.get_inputs()[0].name: tiles})
    assert np.allclose(got, expected, atol=1e-4)


def test_bad_submissions_are_refused_before_a_worker_starts(
    admin_client: FlaskClient, isbi: str
) -> None:
    cases = [
        ({"dataset": isbi, "model": "no-such-net"}, "Unknown model 'no-such-net'"),
        ({"dataset": isbi, "model_options": {"depth": 99}}, "Invalid options for model unet"),
        ({"dataset": isbi, "label_layer": "nothing"}, "has no layer 'nothing'"),
        ({"dataset": isbi, "slices": "3-99"}, "slice"),
        ({"dataset": "missing"}, "missing"),
    ]
    for options, message in cases:
        response = admin_client.post("/api/jobs", json={"kind": "train2d", "options": options})
        assert response.status_code in (400, 404), (options, response.get_json())
        assert message in response.get_json()["error"], response.get_json()
    refused = admin_client.post(
        "/api/jobs", json={"kind": "infer2d", "options": {"model": "none", "dataset": isbi}}
    )
    assert refused.status_code == 404 and "No trained model 'none'" in refused.get_json()["error"]
    assert admin_client.get("/api/jobs").get_json()["jobs"] == []
