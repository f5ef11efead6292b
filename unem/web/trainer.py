"""The trainer: its page, the models it can train (built-in and plugins) and the trained
models in the workspace, with their files to download.

Training and inference themselves are jobs (`train2d`, `infer2d`) submitted through
`/api/jobs`; this module never imports Keras (model modules import it inside `build`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, current_app, render_template, send_file

from unem import __version__
from unem.errors import NotFound
from unem.plugins import LazyModels, ModelRegistry, plugin_paths
from unem.train2d.trained import (
    TrainedModel,
    delete_trained_model,
    get_trained_model,
    list_trained_models,
)
from unem.web.auth_views import current_user, requires
from unem.web.state import AppState, workspace

EXTENSION = "unem.models"

blueprint = Blueprint("trainer", __name__)


def model_registry() -> ModelRegistry:
    models: LazyModels = current_app.extensions[EXTENSION]
    return models()


def trained_json(model: TrainedModel) -> dict[str, Any]:
    """A trained model for clients: its description, and its files with their download links."""
    base = f"/api/trained-models/{quote(model.name)}/files/"
    downloads = [
        {"name": name, "size": path.stat().st_size, "url": base + quote(name)}
        for name, path in model.downloadable_files().items()
    ]
    return {**model.to_json(), "downloads": downloads}


@blueprint.get("/trainer")
def trainer_page() -> str:
    return render_template("trainer.html", user=current_user(), version=__version__)


@blueprint.get("/api/models")
def models() -> Any:
    return model_registry().to_json()


@blueprint.get("/api/trained-models")
def trained_models() -> Any:
    return {"models": [trained_json(model) for model in list_trained_models(workspace())]}


@blueprint.get("/api/trained-models/<name>/files/<filename>")
def download(name: str, filename: str) -> Any:
    path = get_trained_model(workspace(), name).downloadable_files().get(filename)
    if path is None:
        raise NotFound(f"Trained model {name!r} has no file {filename!r} to download.")
    return send_file(path, as_attachment=True, download_name=f"{name}-{filename}")


@blueprint.delete("/api/trained-models/<name>")
@requires("admin")
def delete(name: str) -> Any:
    delete_trained_model(workspace(), name)
    return {"deleted": name}


def init_app(app: Flask) -> None:
    state: AppState = app.extensions["unem"]
    paths = plugin_paths(state.settings.plugins, state.workspace.root)
    app.extensions[EXTENSION] = LazyModels(paths)
    app.register_blueprint(blueprint)
