"""Export a layer as the proofreaders see it: the fragment → segment mapping applied."""

from __future__ import annotations

from pathlib import Path

from unem.progress import Progress, no_progress
from unem.proofread.edits import EDIT_LAYER
from unem.proofread.mapping import non_identity_mapping
from unem.volumes.datasets import get_dataset
from unem.volumes.export import export_layer
from unem.workspace import Workspace


def export_current(ws: Workspace, dataset_id: str, layer_name: str, fmt: str, target: Path,
                   progress: Progress = no_progress, dtype: str | None = None) -> Path:
    """Write the current state of a layer; merges made in Dojo are applied to the ids.
    `dtype` converts (see `unem.volumes.export.DTYPES`), e.g. a prediction to 16 bits."""
    layer = get_dataset(ws, dataset_id).layer(layer_name)
    relabel = non_identity_mapping(ws.db, dataset_id) if layer_name == EDIT_LAYER else None
    return export_layer(layer, fmt, target, progress, relabel, dtype)
