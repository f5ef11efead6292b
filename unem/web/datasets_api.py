"""/api/datasets: list, import, rename, delete, export, thumbnails; /api/fs to pick folders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, request, send_file

from unem.errors import BadInput, NotFound
from unem.proofread.edits import prepare_for_proofreading
from unem.proofread.exporting import export_current
from unem.volumes import datasets, export
from unem.volumes.render import thumbnail_png
from unem.volumes.sources import SLICE_SUFFIXES, StackSource, open_source
from unem.web.auth_views import current_user, requires
from unem.web.events import EVENTS, NAMESPACES
from unem.web.state import app_state, workspace

STACK_FILE_SUFFIXES = {".tif", ".tiff", ".h5", ".hdf5", ".hdf", ".npy", ".npz"}

blueprint = Blueprint("datasets", __name__, url_prefix="/api")


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("The request body must be a JSON object.")
    return data


def user_name() -> str:
    user = current_user()
    return user.name if user else "?"


def dataset_json(dataset: datasets.Dataset) -> dict[str, Any]:
    return {
        **dataset.to_json(),
        "thumbnail": f"/api/datasets/{dataset.id}/thumbnail",
    }


def notify_datasets_changed() -> None:
    app_state().socketio.emit(EVENTS["DATASETS_CHANGED"], {}, namespace=NAMESPACES["DATASETS"])


def open_layer_sources(layers: Any) -> dict[str, StackSource]:
    """Open every named source (paths checked against the allowed folders) before any work."""
    if not isinstance(layers, dict) or "image" not in layers:
        raise BadInput("Name at least the image stack: layers.image.path.")
    sources = {}
    for kind, spec in layers.items():
        if not spec:
            continue
        if kind not in datasets.LAYER_KINDS:
            raise BadInput(f"Unknown layer kind {kind!r}.")
        if not isinstance(spec, dict) or not spec.get("path"):
            raise BadInput(f"layers.{kind} must be an object with a path.")
        path = workspace().resolve(str(spec["path"]))
        sources[kind] = open_source(path, str(spec.get("key") or "") or None)
    if "image" not in sources:
        raise BadInput("Name at least the image stack: layers.image.path.")
    return sources


@blueprint.get("/datasets")
def list_all() -> Any:
    return {"datasets": [dataset_json(d) for d in datasets.list_datasets(workspace())]}


@blueprint.get("/datasets/<dataset_id>")
def show(dataset_id: str) -> Any:
    return dataset_json(datasets.get_dataset(workspace(), dataset_id))


@blueprint.post("/datasets")
@requires("admin")
def import_stack() -> Any:
    data = body()
    name = str(data.get("name") or "").strip()
    if not name:
        raise BadInput("A dataset needs a name.")
    sources = open_layer_sources(data.get("layers"))
    voxel = datasets.check_voxel_size(data.get("voxel_size") or (1, 1, 1))
    ws, user = workspace(), user_name()
    # Refuse what the headers already show to be wrong now, with a 400, not half-way through.
    datasets.check_shapes(sources)
    for kind, source in sources.items():
        datasets.stored_dtype(kind, source)

    def work(progress: Any) -> dict[str, Any]:
        dataset = datasets.import_dataset(ws, name, sources, voxel, user, progress)
        prepare_for_proofreading(ws, dataset.id, progress)
        notify_datasets_changed()
        return dataset.to_json()

    task = app_state().tasks.start("import", f"Import {name}", user, work)
    return task.to_json(), 202


@blueprint.post("/datasets/demo")
@requires("admin")
def create_demo() -> Any:
    from unem.demo import create_demo_dataset

    ws, user = workspace(), user_name()

    def work(progress: Any) -> dict[str, Any]:
        dataset = create_demo_dataset(ws, user, progress)
        prepare_for_proofreading(ws, dataset.id, progress)
        notify_datasets_changed()
        result: dict[str, Any] = dataset.to_json()
        return result

    task = app_state().tasks.start("demo", "Create demo dataset", user, work)
    return task.to_json(), 202


@blueprint.patch("/datasets/<dataset_id>")
@requires("admin")
def rename(dataset_id: str) -> Any:
    dataset = datasets.rename_dataset(workspace(), dataset_id, str(body().get("name", "")))
    notify_datasets_changed()
    return dataset_json(dataset)


@blueprint.delete("/datasets/<dataset_id>")
@requires("admin")
def delete(dataset_id: str) -> Any:
    datasets.delete_dataset(workspace(), dataset_id)
    notify_datasets_changed()
    return {"deleted": dataset_id}


@blueprint.get("/datasets/<dataset_id>/thumbnail")
def thumbnail(dataset_id: str) -> Any:
    dataset = datasets.get_dataset(workspace(), dataset_id)
    png = thumbnail_png(dataset)
    response = Response(png, mimetype="image/png")
    response.set_etag(hashlib.sha1(png).hexdigest())
    response.cache_control.private = True
    response.cache_control.max_age = 60
    return response.make_conditional(request)


@blueprint.post("/datasets/<dataset_id>/export")
@requires("edit")
def export_layer(dataset_id: str) -> Any:
    data = body()
    layer = datasets.get_dataset(workspace(), dataset_id).layer(str(data.get("layer", "")))
    fmt = str(data.get("format", ""))
    if fmt not in export.FORMATS:
        raise BadInput(f"Unknown format {fmt!r}; choose one of {', '.join(export.FORMATS)}.")
    dtype = str(data.get("dtype") or "") or None
    export.check_dtype(dtype)
    ws = workspace()
    target = export.default_target(ws.exports, dataset_id, layer, fmt)

    def work(progress: Any) -> dict[str, Any]:
        written = export_current(ws, dataset_id, layer.name, fmt, target, progress, dtype)
        return {"name": written.name, "download": f"/api/exports/{written.name}"}

    task = app_state().tasks.start("export", f"Export {dataset_id}/{layer.name}", user_name(), work)
    return task.to_json(), 202


@blueprint.get("/exports")
def list_exports() -> Any:
    folder = workspace().exports
    names = sorted(
        p.name for p in folder.iterdir() if not p.name.startswith(".") and p.suffix != ".zip"
    )
    return {"exports": [{"name": n, "download": f"/api/exports/{n}"} for n in names]}


@blueprint.get("/exports/<name>")
def download_export(name: str) -> Any:
    path = workspace().resolve(Path("exports") / name, allow_import_roots=False)
    if path.parent != workspace().exports or not path.exists() or name.startswith("."):
        raise NotFound(f"No export named {name!r}.")
    if path.is_dir():
        path = export.zip_folder(path)
    return send_file(path, as_attachment=True)


@blueprint.get("/tasks")
def list_tasks() -> Any:
    return {"tasks": [task.to_json() for task in app_state().tasks.list()]}


def folder_entry(path: Path) -> dict[str, Any]:
    is_dir = path.is_dir()
    return {"name": path.name, "path": str(path), "dir": is_dir, "stack": looks_like_stack(path)}


def looks_like_stack(path: Path) -> bool:
    if not path.is_dir():
        return path.suffix.lower() in STACK_FILE_SUFFIXES | SLICE_SUFFIXES
    if path.suffix == ".zarr":
        return True
    try:
        return any(p.suffix.lower() in SLICE_SUFFIXES for p in path.iterdir())
    except OSError:  # unreadable: listed, but not offered as a stack
        return False


@blueprint.get("/fs")
@requires("admin")
def browse() -> Any:
    """The folders an admin may import from, or the entries of one of them."""
    ws, raw = workspace(), request.args.get("path")
    if not raw:
        return {
            "path": None,
            "parent": None,
            "entries": [folder_entry(r) for r in ws.readable_roots],
        }
    folder = ws.resolve(raw)
    parent = ws.allowed_parent(folder)
    return {
        "path": str(folder),
        "parent": str(parent) if parent else None,
        "entries": [folder_entry(p) for p in ws.list_folder(folder)],
    }


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
