"""The `train2d` and `infer2d` job kinds, registered like any plugin's.

The server imports this module to read the kinds' schemas and check submissions, so only
the options and light checks live at the top; Keras comes with `train`/`infer`, imported
inside the functions that run in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unem.errors import BadInput
from unem.jobs.builtin import throughput
from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.models.spec import ModelSpec
from unem.train2d.options import InferOptions, TrainOptions
from unem.workspace import Workspace


def model_registry(ws: Workspace) -> Any:
    """The models this workspace can train: built-ins and every plugin it is set up with."""
    from unem.config import load_settings
    from unem.plugins import discover_models, plugin_paths

    settings = load_settings({"workspace": str(ws.root)})
    return discover_models(plugin_paths(settings.plugins, ws.root))


def model_spec(ws: Workspace, options: TrainOptions) -> ModelSpec:
    """The spec of the model to train, its options checked against its own schema."""
    spec: ModelSpec = model_registry(ws).get(options.model)
    try:
        spec.validate(options.model_options)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in error.errors()
        )
        raise BadInput(f"Invalid options for model {options.model}: {problems}") from error
    return spec


def check_training(ws: Workspace, options: TrainOptions) -> None:
    from unem.train2d.data import parse_slices
    from unem.train2d.trained import check_model_name
    from unem.volumes.datasets import get_dataset

    model_spec(ws, options)
    dataset = get_dataset(ws, options.dataset)
    for name in (options.image_layer, options.label_layer):
        if name not in dataset.layers:
            raise BadInput(f"Dataset {options.dataset!r} has no layer {name!r}.")
    parse_slices(options.slices, dataset.shape[0])
    if options.output:
        check_model_name(options.output)


def run_training(context: JobContext, options: TrainOptions) -> dict[str, Any]:
    from unem.train2d.train import TrainRun, train_model

    spec = model_spec(context.workspace, options)
    run = TrainRun(
        folder=context.folder,
        progress=context.progress,
        log=context.log,
        resume=context.resume,
        name=options.output or f"{spec.name}-job{context.job_id}",
    )
    return train_model(context.workspace, spec, options, run)


def check_infer(ws: Workspace, options: InferOptions) -> None:
    from unem.train2d.infer import check_inference

    check_inference(ws, options)


def run_inference(context: JobContext, options: InferOptions) -> dict[str, Any]:
    from unem.train2d.infer import infer_layer
    from unem.train2d.trained import get_trained_model

    trained = get_trained_model(context.workspace, options.model)
    registry = model_registry(context.workspace)
    spec = registry.models.get(trained.info.get("model"))
    layer = infer_layer(context.workspace, options, spec, throughput(context))
    return {"dataset": options.dataset, "layer": layer.name, "model": trained.name}


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Export a trained model")

    model: str = Field(
        description="Trained model to export.",
        json_schema_extra={"x-unem-choices": "trained-model"},
    )
    format: Literal["keras", "savedmodel", "onnx"] = Field(
        "onnx", description="keras: the .keras file; savedmodel: TF SavedModel (zip); onnx."
    )


def check_export(ws: Workspace, options: ExportOptions) -> None:
    from unem.train2d.trained import get_trained_model

    get_trained_model(ws, options.model)


def run_export(context: JobContext, options: ExportOptions) -> dict[str, Any]:
    from unem.train2d.exporting import export_trained_model

    context.progress(0, 1, f"exporting {options.model} as {options.format}")
    path = export_trained_model(context.workspace, options.model, options.format)
    context.progress(1, 1, "exported")
    return {"model": options.model, "file": path.name, "bytes": path.stat().st_size}


def describe_training(options: TrainOptions) -> str:
    return f"Train {options.model} on {options.dataset}/{options.label_layer}"


def describe_inference(options: InferOptions) -> str:
    return f"Predict {options.dataset}/{options.image_layer} with {options.model}"


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name="train2d",
            title="Train a 2D CNN",
            options=TrainOptions,
            run=run_training,
            resource="accelerator",
            resumable=True,
            description="Train a U-Net, ResNet, Highway-Net, DenseNet or plugin model on "
            "labelled slices; the trained model is saved in the workspace's models.",
            describe=describe_training,
            check=check_training,
        )
    )
    register(
        JobKind(
            name="infer2d",
            title="Predict with a 2D CNN",
            options=InferOptions,
            run=run_inference,
            resource="accelerator",
            description="Predict every slice of a dataset with a trained model into a "
            "prediction layer (overlapping tiles, blended without seams).",
            describe=describe_inference,
            check=check_infer,
        )
    )
    register(
        JobKind(
            name="export2d",
            title="Export a trained model",
            options=ExportOptions,
            run=run_export,
            resource="cpu",
            description="Write a trained model as TF SavedModel or ONNX beside its .keras "
            "file, for use outside UNEM; download it from the trainer page.",
            describe=lambda o: f"Export {o.model} as {o.format}",
            check=check_export,
        )
    )
