"""Dojo's HTTP side: the viewer page, dataset state, tiles, segment table, history, marks."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request

from unem.annotations import segment_colours
from unem.errors import BadInput
from unem.proofread import edits, mapping, marks, segments
from unem.volumes import tiles
from unem.volumes.datasets import Dataset, get_dataset
from unem.volumes.store import TILE
from unem.web.auth_views import current_user
from unem.web.state import workspace

blueprint = Blueprint("dojo", __name__, url_prefix="/dojo", template_folder="templates",
                      static_folder="static", static_url_path="/static")


def int_arg(name: str, default: int, low: int = 0, high: int = 10_000) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError as error:
        raise BadInput(f"{name} must be a whole number.") from error
    return max(low, min(high, value))


def ready(dataset_id: str) -> edits.Proofreader:
    """The dataset's proofreader, its fragment index built and crash edits replayed."""
    proofreader = edits.proofreader(workspace(), dataset_id)
    proofreader.ensure_ready()
    return proofreader


def viewer_state(dataset: Dataset, proofreader: edits.Proofreader) -> dict[str, Any]:
    db = workspace().db
    return {
        "dataset": dataset.to_json(),
        "version": proofreader.version(),
        "mapping": {str(f): s for f, s in mapping.non_identity_mapping(db, dataset.id).items()},
        "locks": {str(s): u for s, u in proofreader.locks().items()},
        "names": {str(s): n for s, n in segments.segment_names(db, dataset.id).items()},
        # colours chosen in the 3D annotator; the others are hashed from the id (labels.js)
        "colours": {str(s): c for s, c in segment_colours(db, dataset.id).items()},
        "marks": marks.list_marks(db, dataset.id),
        "tile_size": TILE,
    }


@blueprint.get("/<dataset_id>")
def viewer(dataset_id: str) -> str:
    dataset = get_dataset(workspace(), dataset_id)
    return render_template("dojo.html", dataset=dataset, user=current_user())


@blueprint.get("/api/<dataset_id>/state")
def state(dataset_id: str) -> Any:
    dataset = get_dataset(workspace(), dataset_id)
    return viewer_state(dataset, ready(dataset_id))


@blueprint.get("/api/<dataset_id>/tiles/<layer>/<int:level>/<int:z>/<int:row>/<int:col>")
def tile(dataset_id: str, layer: str, level: int, z: int, row: int, col: int) -> Response:
    dataset = get_dataset(workspace(), dataset_id)
    data_layer = dataset.layer(layer)
    version = edits.proofreader(workspace(), dataset_id).version() if layer == "segmentation" else 0
    # The layer's stamp changes when it is written anew (a prediction overwritten by a new
    # inference, a segmentation replaced): then no browser may keep its old tiles.
    stamp = edits.layer_stamp(workspace().db, dataset_id, layer)
    etag = f"{dataset.created_at}/{layer}/{stamp}/{level}/{z}/{row}/{col}/v{version}"
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    fmt = request.args.get("format", "jpeg")
    body, media_type = tiles.render_tile(data_layer, tiles.TileAddress(level, z, row, col), fmt)
    response = Response(body, mimetype=media_type)
    if media_type == "application/octet-stream":
        response.headers["Content-Encoding"] = "deflate"
        response.headers["X-Dtype"] = "uint64" if data_layer.dtype == "uint64" else "uint32"
    response.set_etag(etag)
    response.cache_control.private = True
    response.cache_control.no_cache = True  # revalidate: the ETag changes with each edit
    return response


@blueprint.get("/api/<dataset_id>/segments")
def segment_table(dataset_id: str) -> Any:
    ready(dataset_id)
    rows, total = segments.segment_table(
        workspace().db, dataset_id, request.args.get("q", ""), request.args.get("sort", "voxels"),
        request.args.get("order", "desc") == "desc", int_arg("limit", 100, 1, 1000),
        int_arg("offset", 0, 0, 10**9))
    return {"segments": [r.to_json() for r in rows], "total": total}


@blueprint.get("/api/<dataset_id>/segments/<int:segment>")
def segment_info(dataset_id: str, segment: int) -> Any:
    ready(dataset_id)
    return segments.segment_info(workspace().db, dataset_id, segment)


@blueprint.get("/api/<dataset_id>/history")
def history(dataset_id: str) -> Any:
    proofreader = ready(dataset_id)
    since = int_arg("since", max(proofreader.version() - 200, 0), 0, 10**12)
    return {"edits": [e.to_json() for e in proofreader.edits_since(since, limit=500)]}
