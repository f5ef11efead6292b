"""The filters page: the filter catalog, previews of a pipeline on one slice, and the
pipelines saved in the workspace. Running a pipeline is a `filter-pipeline` job, submitted
through `/api/jobs` (admins).

Roles: anyone logged in reads the catalog and saved pipelines and previews (a preview
writes nothing and costs one slice); proofreaders and admins save and delete pipelines.

The filters core (pydantic option models for every filter) is imported on the first
request that needs it, not when the server starts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template

from unem import __version__
from unem.errors import BadInput
from unem.web.auth_views import current_user, requires
from unem.web.datasets_api import body, user_name
from unem.web.state import workspace

blueprint = Blueprint("filters", __name__)


@blueprint.get("/filters")
def filters_page() -> str:
    return render_template("filters.html", user=current_user(), version=__version__)


@blueprint.get("/api/filters")
def filters() -> Any:
    from unem.filters.catalog import catalog

    return catalog().to_json()


def parse_box(value: Any) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    try:
        y0, x0, y1, x1 = (int(v) for v in value)
    except (TypeError, ValueError) as error:
        raise BadInput("box is [y0, x0, y1, x1], whole numbers.") from error
    return y0, x0, y1, x1


@blueprint.post("/api/filters/preview")
def preview() -> Response:
    from unem.filters.layer_runs import preview_slice
    from unem.filters.pipeline import make_pipeline

    data = body()
    try:
        z = int(data.get("z", 0))
    except (TypeError, ValueError) as error:
        raise BadInput("z is a slice number.") from error
    pipeline = make_pipeline(data.get("steps") or [])
    dataset, layer = str(data.get("dataset", "")), str(data.get("layer", ""))
    shown = preview_slice(workspace(), dataset, layer, z, pipeline, parse_box(data.get("box")))
    response = Response(shown.png, mimetype="image/png")
    response.headers.update({
        "X-Preview-Applied": str(shown.applied),
        "X-Preview-Kind": shown.kind,
        "X-Preview-Note": shown.note,
        "X-Preview-Box": ",".join(str(v) for v in shown.box),
        "X-Preview-Ms": f"{shown.milliseconds:.0f}",
        "Cache-Control": "no-store",
    })  # fmt: skip
    return response


@blueprint.get("/api/pipelines")
def pipelines() -> Any:
    from unem.filters.saved import list_saved

    return {"pipelines": list_saved(workspace())}


@blueprint.get("/api/pipelines/<name>")
def pipeline(name: str) -> Any:
    from unem.filters.saved import read_saved

    return read_saved(workspace(), name)


@blueprint.put("/api/pipelines/<name>")
@requires("edit")
def save(name: str) -> Any:
    from unem.filters.saved import save_pipeline

    return save_pipeline(workspace(), name, body(), user_name())


@blueprint.delete("/api/pipelines/<name>")
@requires("edit")
def delete(name: str) -> Any:
    from unem.filters.saved import delete_saved

    delete_saved(workspace(), name)
    return {"deleted": name}


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
