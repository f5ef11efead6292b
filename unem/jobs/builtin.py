"""The built-in job kinds, registered through the same hook as any plugin.

Their functions import the heavy modules (zarr, scipy) only when they run, in a worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from unem.errors import BadInput, NotFound
from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.progress import Progress
from unem.workspace import Workspace

DATASET: JsonDict = {"x-unem-choices": "dataset"}  # the form offers the datasets
LAYER: JsonDict = {"x-unem-choices": "layer"}  # ... and the layers of the chosen dataset


class PyramidOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Rebuild pyramid")

    dataset: str = Field(description="Dataset id.", json_schema_extra=DATASET)
    layer: str = Field(
        "image", description="Layer whose coarser levels are rebuilt.", json_schema_extra=LAYER
    )


class GaussianOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Gaussian filter")

    dataset: str = Field(description="Dataset id.", json_schema_extra=DATASET)
    layer: str = Field(
        "image", description="Image or prediction layer to smooth.", json_schema_extra=LAYER
    )
    sigma: float = Field(1.0, gt=0, le=50, description="Standard deviation in y and x (voxels).")
    sigma_z: float = Field(
        0.0,
        ge=0,
        le=50,
        description="Standard deviation in z (voxels); 0 smooths each slice alone.",
    )
    output: str = Field(
        "",
        max_length=48,
        description="Name of the new layer; empty: <layer>-gaussian.",
    )
    overwrite: bool = Field(False, description="Replace a layer of that name if there is one.")

    def output_name(self) -> str:
        return self.output.strip() or f"{self.layer}-gaussian"


def throughput(context: JobContext) -> Progress:
    """A Progress that also reports slices per second, a metric (and TensorBoard curve)."""
    started = time.monotonic()

    def report(step: int, total: int, message: str = "") -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        context.progress(step, total, message, {"slices_per_second": step / elapsed})

    return report


def check_layer(ws: Workspace, options: Any) -> None:
    from unem.volumes.datasets import get_dataset

    try:
        get_dataset(ws, options.dataset).layer(options.layer)
    except NotFound as error:
        raise BadInput(error.message) from error


def run_pyramid(context: JobContext, options: PyramidOptions) -> dict[str, Any]:
    from unem.volumes.layers import rebuild_pyramid

    layer = rebuild_pyramid(context.workspace, options.dataset, options.layer, throughput(context))
    return {"dataset": options.dataset, "layer": layer.name, "levels": len(layer.levels)}


def check_gaussian(ws: Workspace, options: GaussianOptions) -> None:
    from unem.filters.gaussian import check_gaussian as check

    check(
        ws,
        options.dataset,
        options.layer,
        options.output_name(),
        options.sigma,
        options.sigma_z,
        options.overwrite,
    )


def run_gaussian(context: JobContext, options: GaussianOptions) -> dict[str, Any]:
    from unem.filters.gaussian import gaussian_layer

    layer = gaussian_layer(
        context.workspace,
        options.dataset,
        options.layer,
        options.output_name(),
        options.sigma,
        options.sigma_z,
        options.overwrite,
        throughput(context),
    )
    return {"dataset": options.dataset, "layer": layer.name, "dtype": layer.dtype}


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name="pyramid",
            title="Rebuild pyramid",
            options=PyramidOptions,
            run=run_pyramid,
            resource="cpu",
            description="Rebuild a layer's multi-resolution pyramid from its full-resolution "
            "level, e.g. after the zarr store was changed by another program.",
            describe=lambda o: f"Pyramid of {o.dataset}/{o.layer}",
            check=check_layer,
        )
    )
    register(
        JobKind(
            name="gaussian",
            title="Gaussian filter",
            options=GaussianOptions,
            run=run_gaussian,
            resource="cpu",
            description="Smooth an image or prediction layer (2D per slice, or 3D) into a "
            "new layer of the dataset.",
            describe=lambda o: f"Gaussian σ={o.sigma:g}/{o.sigma_z:g} of {o.dataset}/{o.layer}",
            check=check_gaussian,
        )
    )
