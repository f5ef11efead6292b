"""Job kinds of the filters, registered through the same hook as any plugin.

`segment-prediction` turns a prediction layer into the dataset's segmentation, ready to
proofread in Dojo (the one the home page's "Segment for proofreading" button starts).
Heavy modules (scipy, scikit-image, zarr) are imported by the kind's function, in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from unem.errors import BadInput, NotFound
from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.workspace import Workspace

DATASET: JsonDict = {"x-unem-choices": "dataset"}  # the form offers the datasets
LAYER: JsonDict = {"x-unem-choices": "layer"}  # ... and the layers of the chosen dataset


class SegmentPredictionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Segment a prediction for proofreading")

    dataset: str = Field(description="Dataset id.", json_schema_extra=DATASET)
    layer: str = Field(
        "prediction",
        description="Prediction layer: the probability of one class (membrane, mitochondrion…).",
        json_schema_extra=LAYER,
    )
    boundary: bool = Field(
        True,
        description="The prediction marks boundaries (membranes): objects are where it is low. "
        "Off: it marks the objects themselves (e.g. mitochondria).",
    )
    method: Literal["watershed", "threshold"] = Field(
        "watershed",
        description="watershed: seeds in each object's interior flood the probability map "
        "(splits objects that touch); threshold: connected components of the interior.",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Probability that separates objects from the rest."
    )
    min_size: int = Field(
        20, ge=0, description="Objects with fewer voxels are dropped (2d: per slice)."
    )
    mode: Literal["3d", "2d"] = Field(
        "3d",
        description="3d: objects continue across slices; 2d: each slice on its own (ids "
        "still unique across slices).",
    )
    seed_depth: float = Field(
        2.0,
        gt=0,
        le=100,
        description="Watershed: an object gets a second seed where it narrows by at least "
        "this many voxels (larger: fewer splits).",
    )


def check_segment_prediction(ws: Workspace, options: SegmentPredictionOptions) -> None:
    """At submission, in the server: refuse what cannot work before a worker starts."""
    from unem.filters.postprocess import check_options
    from unem.proofread.replace import refuse_locked

    try:
        check_options(
            ws,
            options.dataset,
            options.layer,
            options.method,
            options.threshold,
            options.mode,
            options.min_size,
            options.seed_depth,
        )
    except NotFound as error:
        raise BadInput(error.message) from error
    refuse_locked(ws.db, options.dataset)


def run_segment_prediction(context: JobContext, options: SegmentPredictionOptions) -> Any:
    from unem.filters.postprocess import segment_prediction
    from unem.proofread.replace import replace_segmentation

    ws = context.workspace
    progress = context.progress  # each stage reports its own steps and message
    planes = segment_prediction(
        ws,
        options.dataset,
        options.layer,
        options.method,
        options.threshold,
        options.boundary,
        options.min_size,
        options.mode,
        options.seed_depth,
        progress,
    )
    source = f"{options.method} ({options.mode}) of {options.layer}"
    done = replace_segmentation(ws, options.dataset, planes, source, context.user, progress)
    context.log(
        f"segmentation of {options.dataset}: {done.fragments} fragments; the previous "
        f"one is the layer {done.kept}"
    )
    return {**done.to_json(), "layer": options.layer}


def describe(options: SegmentPredictionOptions) -> str:
    return f"Segment {options.dataset}/{options.layer} for proofreading"


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name="segment-prediction",
            title="Segment a prediction for proofreading",
            options=SegmentPredictionOptions,
            run=run_segment_prediction,
            resource="cpu",
            description="Turn a prediction layer into the dataset's segmentation (watershed "
            "or threshold, 2D or 3D), ready to proofread in Dojo. The segmentation it "
            "replaces is kept as the layer segmentation-before-<time>, with its edit history "
            "archived beside it.",
            describe=describe,
            check=check_segment_prediction,
        )
    )
