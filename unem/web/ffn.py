"""The FFN page (prepare, train, infer, post-process) and what it lists: preparations,
trained FFN models (kept apart from the trainer's 2D models) and the segmentations made.

Preparation, training and inference are jobs (`ffn-prep`, `ffn-train`, `ffn-infer`)
submitted through `/api/jobs`. Nothing here imports Keras.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, render_template, send_file

from unem import __version__
from unem.errors import NotFound
from unem.ffn import get_ffn_model
from unem.ffn.catalog import (
    delete_unused_ffn_model,
    delete_unused_preparation,
    list_ffn_models_json,
    list_preparations_json,
    list_segmentations,
)
from unem.web.auth_views import current_user, requires
from unem.web.state import workspace

blueprint = Blueprint("ffn", __name__)


@blueprint.get("/ffn")
def ffn_page() -> str:
    return render_template("ffn.html", user=current_user(), version=__version__)


@blueprint.get("/api/ffn/preparations")
def preparations() -> Any:
    return {"preparations": list_preparations_json(workspace())}


@blueprint.delete("/api/ffn/preparations/<name>")
@requires("admin")
def delete_preparation(name: str) -> Any:
    delete_unused_preparation(workspace(), name)
    return {"deleted": name}


@blueprint.get("/api/ffn/models")
def models() -> Any:
    return {"models": list_ffn_models_json(workspace())}


@blueprint.get("/api/ffn/models/<name>/files/<filename>")
def download_model(name: str, filename: str) -> Any:
    path = get_ffn_model(workspace(), name).downloadable_files().get(filename)
    if path is None:
        raise NotFound(f"FFN model {name!r} has no file {filename!r} to download.")
    return send_file(path, as_attachment=True, download_name=f"{name}-{filename}")


@blueprint.delete("/api/ffn/models/<name>")
@requires("admin")
def delete_model(name: str) -> Any:
    delete_unused_ffn_model(workspace(), name)
    return {"deleted": name}


@blueprint.get("/api/ffn/segmentations")
def segmentations() -> Any:
    return {"segmentations": list_segmentations(workspace())}


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
