"""The `ffn-prep` and `ffn-train` job kinds, registered like any plugin's.

The server imports this module to read the kinds' schemas and check submissions, so only
the options live at the top; NumPy, SciPy and Keras come with `prep`/`train`, imported
inside the functions (the checks read only small JSON files).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from unem.errors import BadInput
from unem.ffn.options import FFNPrepOptions, FFNTrainOptions
from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.workspace import Workspace


def preparation_name(options: FFNPrepOptions, job_id: int) -> str:
    """The name given, or `<dataset>-<label layer>-job<id>` made safe for a folder."""
    if options.name:
        return options.name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{options.dataset}-{options.label_layer}")
    return f"{stem.strip('-.')[:50] or 'ffn'}-job{job_id}"


def check_prep(ws: Workspace, options: FFNPrepOptions) -> None:
    from unem.ffn.prep import check_preparation_name, dataset_box
    from unem.volumes.datasets import get_dataset

    dataset = get_dataset(ws, options.dataset)
    for name in (options.image_layer, options.label_layer):
        if name not in dataset.layers:
            raise BadInput(f"Dataset {options.dataset!r} has no layer {name!r}.")
    dataset_box(ws, options)
    if options.name:
        check_preparation_name(options.name)


def run_prep(context: JobContext, options: FFNPrepOptions) -> dict[str, Any]:
    from unem.ffn.prep import prepare

    name = preparation_name(options, context.job_id)
    preparation = prepare(context.workspace, options, name, context.progress, context.log)
    info = preparation.info
    return {
        "preparation": name,
        "coordinates": info["coordinates"],
        "objects": info["objects"],
        "partition_voxels": info["partition_voxels"],
        "image_mean": round(info["image_mean"], 3),
        "image_std": round(info["image_std"], 3),
    }


def check_train(ws: Workspace, options: FFNTrainOptions) -> None:
    from unem.ffn.prep import get_preparation
    from unem.train2d.trained import check_model_name

    preparation = get_preparation(ws, options.preparation)
    options.model_options()  # the overrides are checked against each other
    if options.output:
        check_model_name(options.output)
    fov, prepared = options.model_options().fov, preparation.info["lom_radius"]
    if any(p < f // 2 for p, f in zip(prepared, fov, strict=True)):
        raise BadInput(
            f"Preparation {options.preparation!r} keeps a margin of {prepared} (z, y, x): too "
            f"small for a FOV of {list(fov)}; prepare again with this FOV."
        )


def run_train(context: JobContext, options: FFNTrainOptions) -> dict[str, Any]:
    from unem.ffn.train import TrainRun, train_ffn

    run = TrainRun(
        folder=context.folder,
        progress=context.progress,
        log=context.log,
        resume=context.resume,
        name=options.output or f"ffn-job{context.job_id}",
    )
    return train_ffn(context.workspace, options, run)


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name="ffn-prep",
            title="Prepare FFN training data",
            options=FFNPrepOptions,
            run=run_prep,
            resource="cpu",
            description="Compute the local object mask partitions of a ground-truth layer "
            "and balanced training coordinates (google/ffn's compute_partitions and "
            "build_coordinates); kept in the workspace as a named preparation.",
            describe=lambda o: f"Prepare FFN data from {o.dataset}/{o.label_layer}",
            check=check_prep,
        )
    )
    register(
        JobKind(
            name="ffn-train",
            title="Train a flood-filling network",
            options=FFNTrainOptions,
            run=run_train,
            resource="accelerator",
            resumable=True,
            description="Train a convstack 3D FFN on a preparation, moving the field of view "
            "as it fills objects; checkpoints let a cancelled job resume. The trained model "
            "is saved in the workspace's models.",
            describe=lambda o: f"Train an FFN ({o.preset}) on {o.preparation}",
            check=check_train,
        )
    )
