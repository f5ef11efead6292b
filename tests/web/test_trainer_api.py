"""The trainer's API and page: the model registry (built-ins, a plugin, a broken plugin),
the trained models with their files, path safety and roles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import DATA, ROOT
from unem.train2d.trained import save_trained_model

BUILTIN_MODELS = ["unet", "resnet", "highway", "densenet"]
PLUGIN = """
from pydantic import BaseModel, ConfigDict, Field

from unem.models.spec import ModelSpec


class TinyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Tiny")

    filters: int = Field(4, ge=1, le=8, description="Feature maps of the one convolution.")


class Tiny(ModelSpec):
    name = "tiny"
    title = "Tiny CNN"
    description = "One convolution: a plugin of the trainer tests."
    Options = TinyOptions


def register_models(register):
    register(Tiny)
"""
BROKEN = "raise RuntimeError('broken on purpose')\n"
INFO = {
    "model": "unet",
    "model_options": {"base_filters": 4},
    "channels": 1,
    "n_classes": 2,
    "activation": "softmax",
    "dataset": "cells",
    "created_at": "2024-05-01T10:00:00+00:00",
    "validation": {"val_loss": 0.21, "val_dice": 0.87},
}
KERAS_BYTES = b"PK\x03\x04 not really a keras file"


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "tiny_model.py").write_text(PLUGIN)
    (folder / "broken_model.py").write_text(BROKEN)
    return folder


@pytest.fixture
def app(tmp_path: Path, plugins: Path) -> Iterator[Flask]:
    from unem.web import create_app

    settings = {"workspace": str(tmp_path / "ws"), "import_roots": [str(DATA)],
                "plugins": [str(plugins)]}  # fmt: skip
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["unem"].shutdown()


@pytest.fixture
def trained(app: Flask, tmp_path: Path) -> Path:
    """A trained model written as the train2d job does, plus exports and traps."""
    keras_file = tmp_path / "trained.keras"
    keras_file.write_bytes(KERAS_BYTES)
    folder = save_trained_model(app.extensions["unem"].workspace, "membranes", keras_file, INFO)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "saved_model").mkdir()  # a folder: listed, but not a file to download
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the model folder")
    (folder / "escape.txt").symlink_to(secret)
    return folder


def test_models_lists_the_builtins_a_plugin_and_a_broken_plugin(
    client: FlaskClient, viewer_client: FlaskClient, plugins: Path
) -> None:
    assert client.get("/api/models").status_code == 401
    registry = viewer_client.get("/api/models").get_json()
    models = {model["name"]: model for model in registry["models"]}
    # built-ins first, then the repository's example plugin, then the `plugins` setting's
    assert list(models)[:4] == BUILTIN_MODELS and list(models)[-1] == "tiny"
    assert "tiny-fcn" in models
    unet = models["unet"]
    assert unet["title"] == "U-Net" and unet["fields"][:2] == ["depth", "base_filters"]
    base_filters = unet["schema"]["properties"]["base_filters"]
    assert base_filters["default"] == 16 and base_filters["minimum"] == 2
    assert base_filters["description"]
    tiny = models["tiny"]
    assert tiny["title"] == "Tiny CNN" and tiny["fields"] == ["filters"]
    assert tiny["schema"]["properties"]["filters"] == {
        "default": 4,
        "description": "Feature maps of the one convolution.",
        "maximum": 8,
        "minimum": 1,
        "title": "Filters",
        "type": "integer",
    }
    assert registry["broken"] == [
        {"source": str(plugins / "broken_model.py"), "error": "RuntimeError: broken on purpose"}
    ]


def test_the_server_reads_the_models_without_keras(tmp_path: Path, plugins: Path) -> None:
    """The registry imports model modules, never Keras or TensorFlow (they load in workers)."""
    script = f"""
import json, sys
from unem.web import create_app
app = create_app({{"workspace": {str(tmp_path / "ws")!r}, "plugins": [{str(plugins)!r}]}})
client = app.test_client()
client.get("/?token=" + app.extensions["unem"].admin_token)
names = [m["name"] for m in client.get("/api/models").get_json()["models"]]
app.extensions["unem"].shutdown()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow"))
print(json.dumps({{"names": names, "heavy": heavy}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["names"][:4] == BUILTIN_MODELS and seen["names"][-1] == "tiny"
    assert seen["heavy"] == []


def test_trained_models_are_listed_with_their_files(
    viewer_client: FlaskClient, trained: Path
) -> None:
    listed: list[dict[str, Any]] = viewer_client.get("/api/trained-models").get_json()["models"]
    assert [model["name"] for model in listed] == ["membranes"]
    model = listed[0]
    assert model["validation"] == INFO["validation"] and model["model"] == "unet"
    assert model["files"] == ["escape.txt", "model.keras", "model.onnx", "saved_model"]
    base = "/api/trained-models/membranes/files/"
    assert {file["name"]: (file["size"], file["url"]) for file in model["downloads"]} == {
        "model.keras": (len(KERAS_BYTES), base + "model.keras"),
        "model.onnx": (4, base + "model.onnx"),
    }
    response = viewer_client.get(base + "model.keras")
    assert response.status_code == 200 and response.data == KERAS_BYTES
    assert "membranes-model.keras" in response.headers["Content-Disposition"]
    assert viewer_client.get(base + "model.onnx").data == b"onnx"


@pytest.mark.parametrize(
    "path",
    [
        "membranes/files/model.json",  # not one of the files offered
        "membranes/files/saved_model",  # a folder
        "membranes/files/escape.txt",  # a link out of the model folder
        "membranes/files/..%2Fmembranes%2Fmodel.keras",
        "membranes/files/%2E%2E",
        "membranes/files/..%2F..%2Funem.sqlite",
        "..%2Fmodels%2Fmembranes/files/model.keras",
        "%2E%2E/files/unem.sqlite",
        "nope/files/model.keras",
    ],
)
def test_downloads_never_leave_a_model_folder(
    viewer_client: FlaskClient, trained: Path, path: str
) -> None:
    response = viewer_client.get(f"/api/trained-models/{path}")
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_only_admins_delete_trained_models_or_train(
    app: Flask,
    admin_client: FlaskClient,
    viewer_client: FlaskClient,
    proofreader_client: FlaskClient,
    trained: Path,
) -> None:
    for client in (viewer_client, proofreader_client):
        refused = client.delete("/api/trained-models/membranes")
        assert refused.status_code == 403 and "role" in refused.get_json()["error"]
        train = client.post("/api/jobs", json={"kind": "train2d", "options": {}})
        assert train.status_code == 403
        assert client.get("/api/trained-models").status_code == 200
    assert trained.is_dir()
    assert admin_client.delete("/api/trained-models/nope").status_code == 404
    response = admin_client.delete("/api/trained-models/membranes")
    assert response.status_code == 200 and response.get_json() == {"deleted": "membranes"}
    assert not trained.exists()
    assert admin_client.get("/api/trained-models").get_json() == {"models": []}


def test_the_trainer_page_is_linked_and_read_only_for_non_admins(
    app: Flask, client: FlaskClient, admin_client: FlaskClient, viewer_client: FlaskClient
) -> None:
    assert client.get("/trainer").status_code == 302  # strangers log in first
    home = admin_client.get("/").get_data(as_text=True)
    assert 'href="/trainer"' in home
    page = admin_client.get("/trainer").get_data(as_text=True)
    assert 'data-admin="true"' in page and "trainer.js" in page and "trainer.css" in page
    assert 'id="read-only-note"' not in page
    read_only = viewer_client.get("/trainer").get_data(as_text=True)
    assert 'data-admin="false"' in read_only and 'id="read-only-note"' in read_only
    assert 'id="start-training" disabled' in read_only
    for script in ("trainer.js", "trainer_chart.js", "job_form.js", "trainer.css"):
        assert admin_client.get(f"/static/{script}").status_code == 200


def test_schemas_keep_the_order_their_fields_are_declared_in(viewer_client: FlaskClient) -> None:
    """Forms follow the JSON's order, nested groups (augment) included: keys are not sorted."""
    from unem.train2d.options import AugmentOptions, TrainOptions

    kinds = {k["name"]: k for k in viewer_client.get("/api/jobs/kinds").get_json()["kinds"]}
    schema = kinds["train2d"]["schema"]
    assert list(schema["properties"]) == list(TrainOptions.model_fields)
    assert list(schema["$defs"]["AugmentOptions"]["properties"]) == list(
        AugmentOptions.model_fields
    )
    unet = viewer_client.get("/api/models").get_json()["models"][0]
    assert list(unet["schema"]["properties"]) == unet["fields"]
