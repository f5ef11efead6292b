"""The `mesh` job kind: mesh every segment of a dataset into the mesh cache, with progress.

Registered through the same hook as any plugin. This module stays light (the server
imports it to read the schema): zmesh and the volume are only touched in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from unem.errors import BadInput, NotFound
from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind
from unem.workspace import Workspace

DATASET: JsonDict = {"x-unem-choices": "dataset"}  # the form offers the datasets


class MeshOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Mesh all segments")

    dataset: str = Field(description="Dataset id.", json_schema_extra=DATASET)
    lod: int = Field(
        0,
        ge=0,
        le=2,
        description="Level of detail also cached: 0 full surface only; 1 about 4× fewer "
        "faces; 2 about 10× fewer (the full surface is cached in any case).",
    )
    smooth: int = Field(
        0,
        ge=0,
        le=50,
        description="Taubin smoothing iterations of the meshes at that level "
        "(0: the voxel surface as it is).",
    )


def check_mesh(ws: Workspace, options: MeshOptions) -> None:
    """At submission, in the server: the dataset must exist and have a segmentation."""
    from unem.proofread.edits import EDIT_LAYER
    from unem.volumes.datasets import get_dataset

    try:
        get_dataset(ws, options.dataset).layer(EDIT_LAYER)
    except NotFound as error:
        raise BadInput(error.message) from error


def run_mesh(context: JobContext, options: MeshOptions) -> Any:
    from unem.meshes.build import mesh_all

    count = mesh_all(
        context.workspace, options.dataset, options.lod, context.progress, options.smooth
    )
    context.log(f"meshed {count} segments of {options.dataset}")
    return {
        "dataset": options.dataset,
        "segments": count,
        "lod": options.lod,
        "smooth": options.smooth,
    }


def describe(options: MeshOptions) -> str:
    return f"Mesh the segments of {options.dataset}"


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            name="mesh",
            title="Mesh all segments",
            options=MeshOptions,
            run=run_mesh,
            resource="cpu",
            description="Mesh every segment of a dataset's current segmentation (merges "
            "applied, voxel size respected) into the mesh cache the 3D annotator reads.",
            describe=describe,
            check=check_mesh,
        )
    )
