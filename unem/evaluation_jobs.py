"""The `evaluate` job kind: score a segmentation against ground truth and keep the report.

The server imports this module to read the schema and check submissions; the metrics
(and scipy) are imported by the kind's function, in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.workspace import Workspace

DATASET: JsonDict = {"x-unem-choices": "dataset"}  # the form offers the datasets
LAYER: JsonDict = {"x-unem-choices": "layer"}  # ... and the layers of the chosen dataset


class EvaluateOptions(BaseModel):
    """The arguments of `unem.evaluation.evaluate`, by the same names."""

    model_config = ConfigDict(extra="forbid", title="Evaluate a segmentation")

    dataset: str = Field(description="Dataset of the segmentation.", json_schema_extra=DATASET)
    segmentation: str = Field(
        "segmentation",
        description="Layer to score: a segmentation (the proofread one is scored with Dojo's "
        "merges applied), or, in semantic mode, a prediction or a binary layer.",
        json_schema_extra=LAYER,
    )
    groundtruth: str = Field(
        "groundtruth",
        description="Ground-truth label layer (of the ground-truth dataset); 0 is background.",
        json_schema_extra=LAYER,
    )
    groundtruth_dataset: str = Field(
        "",
        max_length=200,
        description="Dataset holding the ground truth, of the same shape; empty: the same one.",
    )
    mode: Literal["instance", "semantic"] = Field(
        "instance",
        description="instance: Rand and VI of objects (split and merge errors); semantic: "
        "Jaccard, Dice, precision and recall of the masks (non-zero voxels).",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Semantic mode on a prediction: probability ≥ this is in."
    )
    slices: str = Field(
        "", max_length=500, description="Slices to score, e.g. 0-19,25; empty: all."
    )
    box: list[int] | None = Field(
        None,
        min_length=6,
        max_length=6,
        description="Sub-volume to score: z0, y0, x0, z1, y1, x1 (stops exclusive); "
        "empty: the whole volume.",
    )
    offenders: int = Field(
        10, ge=0, le=100, description="Worst split objects and merging segments to list."
    )


def check_evaluate(ws: Workspace, options: EvaluateOptions) -> None:
    """At submission, in the server: refuse what cannot work before a worker starts."""
    from unem.evaluation import check_evaluation

    fields = options.model_dump(exclude={"dataset", "segmentation", "groundtruth", "offenders"})
    check_evaluation(ws, options.dataset, options.segmentation, options.groundtruth, **fields)


def run_evaluate(context: JobContext, options: EvaluateOptions) -> dict[str, Any]:
    from unem.evaluation_reports import run_evaluation

    report = run_evaluation(
        context.workspace, options.model_dump(), context.user, context.job_id, context.progress
    )
    return {"report": report["id"], "mode": report["mode"], "scores": report["scores"]}


def describe_evaluate(options: EvaluateOptions) -> str:
    truth = f"{options.groundtruth_dataset}/" if options.groundtruth_dataset else ""
    return f"Evaluate {options.dataset}/{options.segmentation} against {truth}{options.groundtruth}"


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name="evaluate",
            title="Evaluate a segmentation",
            options=EvaluateOptions,
            run=run_evaluate,
            description="Score a segmentation against ground truth (Rand split/merge, VI, "
            "per slice, worst offenders; or Jaccard/Dice of masks) into a report.",
            describe=describe_evaluate,
            check=check_evaluate,
        )
    )
