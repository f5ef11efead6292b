"""What the FFN page and the command line list: preparations (with the training options
that match each one's geometry), trained FFN models and the segmentations FFN jobs made;
and deletions that refuse to pull a preparation or a model from under a job using it.

The server imports this module when it starts, so it stays light: the preparations' code
(NumPy) and the options (pydantic) are imported inside the functions that need them.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from unem.errors import Conflict, NotFound
from unem.ffn import get_ffn_model, list_ffn_models
from unem.jobs.table import list_jobs
from unem.volumes.datasets import get_dataset
from unem.workspace import Workspace

if TYPE_CHECKING:
    from unem.ffn.prep import Preparation

TRAIN_KIND = "ffn-train"
INFER_KIND = "ffn-infer"
ACTIVE = ("queued", "running")
FIGURES = ("objects", "voxels", "seconds", "voxels_per_second", "model_share")


def training_geometry(preparation: Preparation) -> dict[str, Any]:
    """The `ffn-train` options that train with the preparation's own geometry: its preset,
    and its FOV and deltas where they differ from the preset's."""
    from unem.ffn.options import PRESETS

    info = preparation.info
    preset = str(info.get("preset", "cpu_sparse_z"))
    base = PRESETS.get(preset)
    options: dict[str, Any] = {"preset": preset}
    for key in ("fov", "deltas"):
        value = info.get(key)
        if value is not None and (base is None or list(getattr(base, key)) != list(value)):
            options[key] = list(value)
    return options


def preparation_json(preparation: Preparation) -> dict[str, Any]:
    """A preparation for clients, with `train_defaults` (see `training_geometry`)."""
    return {**preparation.to_json(), "train_defaults": training_geometry(preparation)}


def list_preparations_json(ws: Workspace) -> list[dict[str, Any]]:
    """Every preparation, newest first, as `preparation_json` describes it."""
    from unem.ffn.prep import list_preparations

    return [preparation_json(p) for p in list_preparations(ws)]


def list_ffn_models_json(ws: Workspace) -> list[dict[str, Any]]:
    """The trained FFN models, newest first: their `model.json` and files."""
    return [model.to_json() for model in list_ffn_models(ws)]


def active_jobs_using(ws: Workspace, kind: str, option: str, name: str) -> list[int]:
    """Ids of the queued or running jobs of `kind` whose option `option` is `name`."""
    return [
        job.id
        for job in list_jobs(ws.db, ACTIVE)
        if job.kind == kind and job.options.get(option) == name
    ]


def refuse_if_used(ws: Workspace, kind: str, option: str, name: str, what: str) -> None:
    users = active_jobs_using(ws, kind, option, name)
    if users:
        jobs = ", ".join(f"#{i}" for i in users)
        raise Conflict(
            f"{what} {name!r} is used by {kind} job {jobs}; cancel it or let it finish "
            "before deleting it."
        )


def delete_unused_preparation(ws: Workspace, name: str) -> None:
    """Delete preparation `name`, unless a queued or running training job reads it."""
    from unem.ffn.prep import delete_preparation, get_preparation

    get_preparation(ws, name)  # NotFound first: it names the preparations there are
    refuse_if_used(ws, TRAIN_KIND, "preparation", name, "Preparation")
    delete_preparation(ws, name)


def delete_unused_ffn_model(ws: Workspace, name: str) -> None:
    """Delete the trained FFN model `name`, unless a queued or running inference uses it."""
    folder = get_ffn_model(ws, name).folder
    refuse_if_used(ws, INFER_KIND, "model", name, "FFN model")
    shutil.rmtree(folder)


def list_segmentations(ws: Workspace) -> list[dict[str, Any]]:
    """The segmentations of finished `ffn-infer` jobs, newest first.

    Each says where it went (`dataset`, `layer`, `probability_layer`), its `box` in the
    dataset (z0, y0, x0, z1, y1, x1, stops exclusive; what an evaluation should score),
    the job's figures, and whether it is `current`: its layer still exists and no later
    FFN job wrote a layer of that name (a second run into `segmentation` replaces it)."""
    found, seen = [], set()
    for job in list_jobs(ws.db, ["done"]):
        if job.kind != INFER_KIND or not isinstance(job.result, dict):
            continue
        result, options = job.result, job.options
        dataset_id = str(result.get("dataset", options.get("dataset", "")))
        layer = str(result.get("layer", options.get("output", "")))
        try:
            dataset = get_dataset(ws, dataset_id)
        except NotFound:
            dataset = None
        box = dataset_box(str(options.get("box", "")), dataset.shape) if dataset else None
        exists = dataset is not None and layer in dataset.layers
        found.append(
            {
                "job": job.id,
                "finished_at": job.finished_at,
                "model": options.get("model"),
                "dataset": dataset_id,
                "dataset_name": dataset.name if dataset is not None else None,
                "layer": layer,
                "probability_layer": result.get("probability_layer"),
                "box": box,
                "current": exists and (dataset_id, layer) not in seen,
                **{k: result[k] for k in FIGURES if k in result},
            }
        )
        seen.add((dataset_id, layer))
    return found


def dataset_box(text: str, shape: tuple[int, int, int]) -> list[int] | None:
    """A job's sub-box text as z0, y0, x0, z1, y1, x1 in a dataset of `shape` (None if it
    no longer fits: the dataset was replaced by one of another shape)."""
    from unem.ffn.options import parse_box

    try:
        slices = parse_box(text, shape)
    except ValueError:
        return None
    return [s.start for s in slices] + [s.stop for s in slices]
