"""The `filter-pipeline` job kind: run a pipeline (saved by name, or its steps given) on a
layer of a dataset into a new layer. Registered through the same hook as any plugin; the
filters themselves (scipy, scikit-image, cc3d, fastremap) are imported in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from unem.errors import BadInput, NotFound
from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.workspace import Workspace

DATASET: JsonDict = {"x-unem-choices": "dataset"}  # the form offers the datasets
LAYER: JsonDict = {"x-unem-choices": "layer"}  # ... and the layers of the chosen dataset
KIND = "filter-pipeline"

if TYPE_CHECKING:
    from unem.filters.pipeline import Pipeline


class PipelineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Filter pipeline")

    dataset: str = Field(description="Dataset id.", json_schema_extra=DATASET)
    layer: str = Field("image", description="Layer to filter.", json_schema_extra=LAYER)
    pipeline: str = Field(
        "", max_length=64, description="A pipeline saved on the filters page (or give steps)."
    )
    steps: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The steps, [{filter, options}, …], as the filters page sends them.",
    )
    output: str = Field(
        "", max_length=48, description="Name of the new layer; empty: <layer>-<pipeline>."
    )
    output_kind: Literal["auto", "image", "prediction", "segmentation"] = Field(
        "auto",
        description="Kind of the new layer; auto: image for images, prediction for "
        "predictions, segmentation for masks and labels.",
    )
    overwrite: bool = Field(False, description="Replace a layer of that name if there is one.")

    def output_name(self) -> str:
        return self.output.strip() or f"{self.layer}-{self.pipeline or 'filtered'}"[:48]


def resolve_pipeline(ws: Workspace, options: PipelineOptions) -> Pipeline:
    """The pipeline to run: the saved one named, or the steps given (exactly one of them)."""
    from unem.filters.pipeline import make_pipeline
    from unem.filters.saved import get_saved

    if bool(options.pipeline) == bool(options.steps):
        raise BadInput("Name a saved pipeline or give its steps (one of the two).")
    if options.pipeline:
        try:
            return get_saved(ws, options.pipeline)
        except NotFound as error:
            raise BadInput(error.message) from error
    return make_pipeline(options.steps)


def check_filter_pipeline(ws: Workspace, options: PipelineOptions) -> None:
    """At submission, in the server: refuse what cannot work before a worker starts."""
    from unem.filters.layer_runs import check_run

    pipeline = resolve_pipeline(ws, options)
    try:
        check_run(ws, options.dataset, options.layer, pipeline, options.output_name(),
                  options.output_kind, options.overwrite)  # fmt: skip
    except NotFound as error:
        raise BadInput(error.message) from error


def run_filter_pipeline(context: JobContext, options: PipelineOptions) -> dict[str, Any]:
    from unem.filters.layer_runs import run_pipeline_layer

    ws = context.workspace
    pipeline = resolve_pipeline(ws, options)
    context.log(f"pipeline: {[step.to_json() for step in pipeline.steps]}")
    layer = run_pipeline_layer(ws, options.dataset, options.layer, pipeline,
                               options.output_name(), options.output_kind, options.overwrite,
                               context.progress)  # fmt: skip
    return {
        "dataset": options.dataset,
        "layer": layer.name,
        "kind": layer.kind,
        "dtype": layer.dtype,
        "steps": len(pipeline.steps),
    }


def describe(options: PipelineOptions) -> str:
    what = options.pipeline or f"{len(options.steps)} filter steps"
    return f"Filter {options.dataset}/{options.layer} ({what}) into {options.output_name()}"


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name=KIND,
            title="Filter pipeline",
            options=PipelineOptions,
            run=run_filter_pipeline,
            resource="cpu",
            description="Run a filter pipeline (from the filters page, or saved there) on a "
            "layer into a new image, prediction or segmentation layer of the dataset: 2D "
            "steps slice by slice, 3D steps block-wise with a halo, or over the whole volume "
            "where they must.",
            describe=describe,
            check=check_filter_pipeline,
        )
    )
