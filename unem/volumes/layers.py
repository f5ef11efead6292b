"""Layers after import: rebuild a layer's pyramid from level 0, add a computed layer.

Both stream slice by slice (memory stays near a few slices per level), so they run on
stacks larger than memory, as imports do.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from unem.errors import BadInput
from unem.progress import Progress, no_progress
from unem.volumes.datasets import Layer, disk_usage, get_dataset
from unem.volumes.store import Level, PyramidWriter, open_level
from unem.workspace import Workspace

LAYER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
RESERVED_NAMES = ("image", "segmentation")  # what import and proofreading write
READ_SLICES = 8  # slices read from level 0 at once while rebuilding


def rebuild_pyramid(
    ws: Workspace, dataset_id: str, layer_name: str, progress: Progress = no_progress
) -> Layer:
    """Write every coarser level of a layer anew from its level 0 (after external changes).

    Level 0 is only read, so nothing written there meanwhile is lost.
    """
    dataset = get_dataset(ws, dataset_id)
    layer = dataset.layer(layer_name)
    source = open_level(layer.path, layer.levels[0].path)
    depth = int(source.shape[0])
    with PyramidWriter(
        layer.path, source.shape, layer.dtype, layer.kind, dataset.voxel_size, rebuild=True
    ) as writer:
        for z0 in range(0, depth, READ_SLICES):
            for plane in np.asarray(source[z0 : z0 + READ_SLICES]):
                writer.write(plane)
            progress(min(z0 + READ_SLICES, depth), depth, "rebuilding the pyramid")
    _save_levels(ws, dataset_id, layer_name, writer.levels)
    return get_dataset(ws, dataset_id).layer(layer_name)


def _save_levels(ws: Workspace, dataset_id: str, name: str, levels: list[Level]) -> None:
    ws.db.table("layers").update(
        (dataset_id, name), {"levels": json.dumps([level.to_json() for level in levels])}
    )


def check_new_layer(ws: Workspace, dataset_id: str, name: str, overwrite: bool) -> None:
    """Refuse a layer name that is malformed, or taken (unless `overwrite`)."""
    if not LAYER_NAME.match(name):
        raise BadInput(
            f"Layer name {name!r}: use lower-case letters, digits, - and _ (at most 48)."
        )
    if name in RESERVED_NAMES:
        raise BadInput(f"The {name} layer is the dataset's own; name the new layer otherwise.")
    if name in get_dataset(ws, dataset_id).layers and not overwrite:
        raise BadInput(f"Dataset {dataset_id!r} already has a layer {name!r}.")


def add_layer(
    ws: Workspace,
    dataset_id: str,
    name: str,
    kind: str,
    dtype: str,
    planes: Iterable[np.ndarray],
    source: str,
    overwrite: bool = False,
    progress: Progress = no_progress,
) -> Layer:
    """Write `planes` (one per slice, in order) as a new layer of a dataset.

    The layer is written aside and moved into place together with its row in `layers`,
    as an import does; with `overwrite`, it replaces a layer of the same name.
    """
    check_new_layer(ws, dataset_id, name, overwrite)
    dataset = get_dataset(ws, dataset_id)
    depth = dataset.shape[0]
    tmp = ws.new_tmp_dir()
    try:
        path = tmp / f"{name}.zarr"
        with PyramidWriter(path, dataset.shape, dtype, kind, dataset.voxel_size) as writer:
            for z, plane in enumerate(planes):
                writer.write(plane)
                progress(z + 1, depth, f"writing {name}")
        _register_layer(ws, dataset_id, name, kind, dtype, writer.levels, source, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return get_dataset(ws, dataset_id).layer(name)


def _register_layer(
    ws: Workspace,
    dataset_id: str,
    name: str,
    kind: str,
    dtype: str,
    levels: list[Level],
    source: str,
    written: Path,
) -> None:
    """Move the written layer into place and record it (replacing a namesake), as one step."""
    target = ws.dataset_dir(dataset_id) / f"{name}.zarr"
    added = disk_usage(written)
    old = written.parent / "replaced.zarr"
    with ws.db.atomic():
        removed = disk_usage(target) if target.exists() else 0
        ws.db.table("layers").delete_where("dataset_id = ? AND name = ?", [dataset_id, name])
        ws.db.table("layers").insert(
            {
                "dataset_id": dataset_id,
                "name": name,
                "kind": kind,
                "dtype": dtype,
                "levels": json.dumps([level.to_json() for level in levels]),
                "source": source,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        ws.db.execute(
            "UPDATE datasets SET size_bytes = coalesce(size_bytes, 0) + ? WHERE id = ?",
            [added - removed, dataset_id],
        )
        if target.exists():
            target.rename(old)  # removed with the temporary folder
        written.rename(target)
