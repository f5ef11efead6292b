"""The `ffn-infer` job kind: segment a dataset with a trained flood-filling network.

The server imports this module to read the kind's schema and check submissions, so only
the options and light checks live here; NumPy, SciPy and Keras come with
`unem.ffn.inference`, imported inside the function that runs in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field

from unem.errors import BadInput, NotFound
from unem.ffn.options import FFNInferOptions, parse_box
from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.workspace import Workspace

EDIT_LAYER = "segmentation"  # Dojo's proofreading layer (unem.proofread.edits.EDIT_LAYER)


class FFNInferJobOptions(FFNInferOptions):
    """`FFNInferOptions` and where the result goes."""

    model_config = ConfigDict(extra="forbid", title="Segment with a flood-filling network")

    output: str = Field(
        EDIT_LAYER,
        max_length=48,
        description="segmentation: replace the dataset's segmentation, ready to proofread in "
        "Dojo (the one it replaces is kept as the layer segmentation-before-<time>, with its "
        "edit history archived); another name: write a new layer of that name instead.",
    )
    output_kind: Literal["segmentation", "groundtruth"] = Field(
        "segmentation", description="Kind of the new layer (when output is not segmentation)."
    )

    @property
    def replaces_segmentation(self) -> bool:
        return self.output == EDIT_LAYER

    def probability_layer(self) -> str:
        """ffn-probability, or <output>-probability beside a new layer."""
        return "ffn-probability" if self.replaces_segmentation else f"{self.output}-probability"


def check_infer(ws: Workspace, options: FFNInferJobOptions) -> None:
    """At submission, in the server: refuse what cannot work before a worker starts."""
    from unem.ffn import get_ffn_model
    from unem.volumes.datasets import get_dataset

    try:
        dataset = get_dataset(ws, options.dataset)
        dataset.layer(options.image_layer)
        info = get_ffn_model(ws, options.model).info
    except NotFound as error:
        raise BadInput(error.message) from error
    try:
        box = parse_box(options.box, dataset.shape)
    except ValueError as error:
        raise BadInput(f"Invalid box: {error}") from error
    fov = [int(f) for f in info.get("fov", (1, 1, 1))]
    sides = [s.stop - s.start for s in box]
    if any(side < f for side, f in zip(sides, fov, strict=True)):
        raise BadInput(
            f"The box {sides} (z, y, x) is smaller than the model's field of view {fov}: "
            "no seed would have room."
        )
    check_outputs(ws, options)


def check_outputs(ws: Workspace, options: FFNInferJobOptions) -> None:
    from unem.proofread.replace import refuse_locked
    from unem.volumes.datasets import get_dataset
    from unem.volumes.layers import check_new_layer

    if options.replaces_segmentation:
        if EDIT_LAYER not in get_dataset(ws, options.dataset).layers:
            raise BadInput(
                f"Dataset {options.dataset!r} has no segmentation layer to replace; name a "
                "new layer as output."
            )
        refuse_locked(ws.db, options.dataset)
    else:
        if options.output == options.image_layer:
            raise BadInput(f"The output {options.output!r} would replace the image.")
        check_new_layer(ws, options.dataset, options.output, options.overwrite)
    if options.probabilities:
        name = options.probability_layer()
        if name == options.image_layer:
            raise BadInput(f"The probability layer {name!r} would replace the image.")
        try:
            check_new_layer(ws, options.dataset, name, options.overwrite)
        except BadInput as error:
            raise BadInput(f"{error.message} Tick overwrite to replace it.") from error


def run_infer(context: JobContext, options: FFNInferJobOptions) -> dict[str, Any]:
    from unem.ffn.inference import JobRun, infer_dataset

    run = JobRun(
        checkpoint_dir=context.checkpoint_dir,
        resume=context.resume,
        report=context.progress,
        log=context.log,
        user=context.user,
    )
    return infer_dataset(context.workspace, options, run)


def describe(options: FFNInferJobOptions) -> str:
    return f"FFN {options.model} on {options.dataset}/{options.image_layer}"


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name="ffn-infer",
            title="Segment with a flood-filling network",
            options=FFNInferJobOptions,
            run=run_infer,
            resource="accelerator",
            resumable=True,
            description="Flood-fill 3D objects from seeds with a trained FFN (optionally a "
            "forward and a reverse pass with their consensus) into the dataset's "
            "segmentation, ready to proofread in Dojo, or into a new layer; the canvas is "
            "checkpointed, so an interrupted job resumes where it stopped.",
            describe=describe,
            check=check_infer,
        )
    )
