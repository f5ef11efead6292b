"""The annotator's HTTP side: the page, its state, objects, meshes, markers and exports.

Every route needs a login (the app's guard); changing markers needs the edit permission.
Positions and sizes are physical: nm, nm², nm³.
"""

# No `from __future__ import annotations`: it would shadow the module `unem.annotations`.
import shutil
from typing import Any

from flask import Blueprint, Response, render_template, request, send_file

from annotator3d.sockets import room
from dojo.views import int_arg
from unem import annotations, meshes
from unem.errors import BadInput
from unem.volumes.datasets import get_dataset
from unem.web.auth_views import current_user, requires
from unem.web.events import EVENTS, NAMESPACES
from unem.web.state import app_state, workspace

blueprint = Blueprint(
    "annotator3d",
    __name__,
    url_prefix="/annotator",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def csv_response(text: str, name: str) -> Response:
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def segment_list(value: Any) -> list[int]:
    """Segments from "1,2,3" (a query) or [1, 2, 3] (JSON); the core checks how many."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return [int(s) for s in items or () if str(s).strip()]
    except (TypeError, ValueError) as error:
        raise BadInput("segments are whole numbers separated by commas.") from error


@blueprint.get("/<dataset_id>")
def viewer(dataset_id: str) -> str:
    dataset = get_dataset(workspace(), dataset_id)
    return render_template("annotator.html", dataset=dataset, user=current_user())


@blueprint.get("/api/<dataset_id>/state")
def state(dataset_id: str) -> Any:
    return annotations.viewer_state(workspace(), dataset_id)


@blueprint.get("/api/<dataset_id>/objects")
def objects(dataset_id: str) -> Any:
    return {"objects": annotations.object_table(workspace(), dataset_id)}


@blueprint.get("/api/<dataset_id>/objects.csv")
def objects_csv(dataset_id: str) -> Response:
    table = annotations.object_table(workspace(), dataset_id)
    return csv_response(annotations.objects_csv(table), f"{dataset_id}-objects.csv")


@blueprint.get("/api/<dataset_id>/meshes/<int:segment>")
def mesh(dataset_id: str, segment: int) -> Response:
    lod, smooth = int_arg("lod", 0, 0, 8), int_arg("smooth", 0, 0, 50)
    created = get_dataset(workspace(), dataset_id).created_at
    found = meshes.get_mesh(workspace(), dataset_id, segment, lod=lod, smooth=smooth)
    etag = f"{created}/{segment}/v{found.version}/lod{lod}/s{smooth}"
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    response = Response(found.to_bytes(), mimetype="application/octet-stream")
    response.set_etag(etag)
    response.cache_control.private = True
    response.cache_control.no_cache = True  # revalidate: an edit makes a new mesh version
    return response


@blueprint.get("/api/<dataset_id>/markers")
def markers(dataset_id: str) -> Any:
    found = annotations.list_markers(workspace().db, dataset_id)
    return {"markers": [m.to_json() for m in found]}


@blueprint.get("/api/<dataset_id>/markers.csv")
def markers_csv(dataset_id: str) -> Response:
    found = annotations.list_markers(workspace().db, dataset_id)
    return csv_response(annotations.markers_csv(found), f"{dataset_id}-markers.csv")


@blueprint.post("/api/<dataset_id>/markers.csv")
@requires("edit")
def import_markers(dataset_id: str) -> Any:
    body = request.get_json(silent=True) or {}
    if not isinstance(body.get("csv"), str):
        raise BadInput('Send {"csv": "...the table...", "replace": false}.')
    user = current_user()
    found = annotations.import_markers_csv(
        workspace().db,
        dataset_id,
        user.name if user else "",
        body["csv"],
        replace=bool(body.get("replace")),
    )
    payload = {"markers": [m.to_json() for m in found]}
    app_state().socketio.emit(
        EVENTS["ANNOTATOR_MARKERS"], payload, to=room(dataset_id), namespace=NAMESPACES["ANNOTATOR"]
    )
    return payload


@blueprint.route("/api/<dataset_id>/export", methods=["GET", "POST"])
def export(dataset_id: str) -> Response:
    values = (request.get_json(silent=True) or {}) if request.method == "POST" else request.args
    fmt = str(values.get("format", "")).lower()
    segments = segment_list(values.get("segments"))
    out_dir = workspace().new_tmp_dir()
    try:
        path = meshes.export_meshes(workspace(), dataset_id, segments, fmt, out_dir)
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    response = send_file(path, as_attachment=True, max_age=0, download_name=path.name)
    response.call_on_close(lambda: shutil.rmtree(out_dir, ignore_errors=True))
    return response
