"""Datasets: import stacks into the workspace, list them, read them back, delete them.

An import writes every layer into a temporary folder and renames it into place only when
all layers are complete; the database rows are written in the same step. A failed or
interrupted import therefore leaves nothing behind (`Workspace.recover` sweeps what a
crash left).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from unem.errors import BadInput, NotFound
from unem.progress import Progress, no_progress
from unem.volumes.sources import StackSource
from unem.volumes.store import LABEL_KINDS, Level, PyramidWriter, create_pyramid, plan_levels
from unem.workspace import Workspace

LAYER_KINDS = ("image", "segmentation", "prediction", "groundtruth")
IMAGE_DTYPES = {"uint8", "uint16", "bool", "rgb"}
PREDICTION_DTYPES = {"uint8", "uint16", "float32", "float64", "bool"}
LABEL_SOURCE_DTYPES = {
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "rgb",
}


@dataclass(frozen=True)
class Layer:
    dataset_id: str
    name: str
    kind: str
    dtype: str
    levels: tuple[Level, ...]
    path: Path

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.levels[0].shape

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "levels": [level.to_json() for level in self.levels],
        }


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    source: str
    created_at: str
    created_by: str
    layers: dict[str, Layer] = field(default_factory=dict)
    size_bytes: int = 0  # on disk, measured at import (so listing never walks the chunks)

    def layer(self, name: str) -> Layer:
        if name not in self.layers:
            raise NotFound(f"Dataset {self.id!r} has no layer {name!r}.")
        return self.layers[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "shape": list(self.shape),
            "voxel_size": list(self.voxel_size),
            "source": self.source,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "layers": [layer.to_json() for layer in self.layers.values()],
            "size_bytes": self.size_bytes,
        }


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    return slug or "dataset"


def unique_id(ws: Workspace, name: str) -> str:
    base = slugify(name)
    taken = {row["id"] for row in ws.db.table("datasets").rows}
    candidate, n = base, 2
    while candidate in taken or ws.dataset_dir(candidate).exists():
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def check_voxel_size(voxel_size: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError) as error:
        raise BadInput(f"Voxel size must be three numbers (z, y, x) in nm: {error}") from error
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise BadInput("Voxel size must be three positive numbers (z, y, x) in nm.")
    return values[0], values[1], values[2]


def stored_dtype(kind: str, source: StackSource) -> str:
    """The dtype a layer is stored in, or BadInput if the source cannot be that layer."""
    dtype = source.dtype
    if kind == "image":
        if dtype not in IMAGE_DTYPES:
            raise BadInput(
                f"{source.description}: an image must be 8- or 16-bit grayscale, not {dtype}."
            )
        return "uint8" if dtype in {"bool", "rgb"} else dtype
    if kind == "prediction":
        if dtype not in PREDICTION_DTYPES:
            raise BadInput(f"{source.description}: a prediction cannot be {dtype}.")
        return {"bool": "uint8", "float64": "float32"}.get(dtype, dtype)
    if dtype not in LABEL_SOURCE_DTYPES:
        raise BadInput(f"{source.description}: labels must be integers, not {dtype}.")
    return "uint64" if dtype in {"uint64", "int64"} else "uint32"


def convert_slice(array: np.ndarray, kind: str, dtype: str, where: str) -> np.ndarray:
    """Turn one slice as read into the stored dtype; refuse values that do not fit."""
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = rgb_to_labels(array) if kind in LABEL_KINDS else rgb_to_gray(array)
    if array.dtype == bool:
        return array.astype(dtype) * (255 if kind == "image" else 1)
    if kind in LABEL_KINDS and np.issubdtype(array.dtype, np.signedinteger) and array.min() < 0:
        raise BadInput(f"{where}: labels must not be negative (found {int(array.min())}).")
    return np.asarray(array, dtype=dtype)


def rgb_to_gray(array: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114])
    gray: np.ndarray = np.rint(array[..., :3].astype(np.float64) @ weights)
    return gray.astype(array.dtype)


def rgb_to_labels(array: np.ndarray) -> np.ndarray:
    """Colour-coded label images: each distinct colour becomes the id r·2¹⁶ + g·2⁸ + b."""
    rgb = array[..., :3].astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def check_shapes(sources: Mapping[str, StackSource]) -> tuple[int, int, int]:
    image = sources["image"]
    for kind, source in sources.items():
        if source.shape[0] != image.shape[0]:
            raise BadInput(
                f"The {kind} has {source.shape[0]} slices but the image has {image.shape[0]} "
                f"({source.description} vs {image.description})."
            )
        if source.shape != image.shape:
            raise BadInput(
                f"The {kind} is {source.shape[2]}×{source.shape[1]} but the image is "
                f"{image.shape[2]}×{image.shape[1]} ({source.description})."
            )
    return image.shape


def import_dataset(
    ws: Workspace,
    name: str,
    sources: Mapping[str, StackSource],
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    user: str = "admin",
    progress: Progress = no_progress,
) -> Dataset:
    """Import an image stack and optional label/prediction stacks as a new dataset.

    `sources` maps layer kind ("image", "segmentation", ...) to an opened source; the image
    is required. An image-only dataset gets an empty segmentation layer to paint in.
    """
    name, shape, voxel, dtypes = check_import(name, sources, voxel_size)
    tmp = ws.new_tmp_dir()
    try:
        dtypes = write_layers(tmp, sources, dtypes, voxel, progress)
        dataset_id = register(ws, name, shape, voxel, sources, dtypes, user, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = shape[0] * len(sources)
    progress(total, total, "done")
    return get_dataset(ws, dataset_id)


def check_import(
    name: str, sources: Mapping[str, StackSource], voxel_size: Sequence[float]
) -> tuple[str, tuple[int, int, int], tuple[float, float, float], dict[str, str]]:
    """Everything an import needs, checked before anything is written: the name, the
    shape, the voxel size and the stored dtype of each layer."""
    if "image" not in sources:
        raise BadInput("A dataset needs an image stack.")
    unknown = set(sources) - set(LAYER_KINDS)
    if unknown:
        raise BadInput(f"Unknown layer kinds: {', '.join(sorted(unknown))}.")
    if not name.strip():
        raise BadInput("A dataset needs a name.")
    shape = check_shapes(sources)
    voxel = check_voxel_size(voxel_size)
    dtypes = {kind: stored_dtype(kind, source) for kind, source in sources.items()}
    return name.strip(), shape, voxel, dtypes


def write_layers(
    folder: Path,
    sources: Mapping[str, StackSource],
    dtypes: Mapping[str, str],
    voxel: tuple[float, float, float],
    progress: Progress,
) -> dict[str, str]:
    """Write every layer into `folder`; the stored dtypes, with the empty segmentation
    an image-only dataset gets to paint in."""
    shape = sources["image"].shape
    total = shape[0] * len(sources)
    for index, (kind, source) in enumerate(sources.items()):
        on_slice = slice_progress(progress, index * shape[0], total)
        write_layer(folder / f"{kind}.zarr", kind, dtypes[kind], source, voxel, on_slice)
    if "segmentation" in sources:
        return dict(dtypes)
    levels = plan_levels(shape, voxel)
    create_pyramid(folder / "segmentation.zarr", levels, "uint32", "segmentation", voxel)
    return {**dtypes, "segmentation": "uint32"}


def slice_progress(progress: Progress, done: int, total: int) -> Callable[[int], None]:
    """Report slice z of a layer whose first slice is step `done` of `total`."""
    return lambda z: progress(done + z, total, "importing")


def write_layer(
    path: Path,
    kind: str,
    dtype: str,
    source: StackSource,
    voxel_size: Sequence[float],
    on_slice: Callable[[int], object] | None = None,
) -> list[Level]:
    """Write `source` as the pyramid of one layer at `path`, slice by slice."""
    try:
        with PyramidWriter(path, source.shape, dtype, kind, voxel_size) as writer:
            for z in range(source.shape[0]):
                writer.write(convert_slice(source.read(z), kind, dtype, source.where(z)))
                if on_slice is not None:
                    on_slice(z + 1)
    finally:
        source.close()  # a failed import must not keep the user's file open
    return writer.levels


def register(
    ws: Workspace,
    name: str,
    shape: tuple[int, int, int],
    voxel: tuple[float, float, float],
    sources: Mapping[str, StackSource],
    dtypes: Mapping[str, str],
    user: str,
    tmp: Path,
) -> str:
    """Move the finished volumes into place and record them, as one step; the new id.

    The id is chosen here, at the end, so that an import started meanwhile with the same
    name cannot take it while this one was writing.
    """
    target: Path | None = None
    size_bytes = disk_usage(tmp)
    try:
        with ws.db.atomic():
            dataset_id = unique_id(ws, name)
            insert_rows(ws, dataset_id, name, shape, voxel, sources, dtypes, user, size_bytes)
            # Renamed last, inside the transaction: if the rename fails the rows roll back;
            # if the process dies after it, recovery finds the folder without rows.
            target = ws.dataset_dir(dataset_id)
            tmp.rename(target)
    except BaseException:
        if target is not None and target.exists() and not tmp.exists():
            target.rename(tmp)  # the commit failed: hand the folder back to be removed
        raise
    return dataset_id


def insert_rows(
    ws: Workspace,
    dataset_id: str,
    name: str,
    shape: tuple[int, int, int],
    voxel: tuple[float, float, float],
    sources: Mapping[str, StackSource],
    dtypes: Mapping[str, str],
    user: str,
    size_bytes: int,
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    levels = json.dumps([level.to_json() for level in plan_levels(shape, voxel)])
    ws.db.table("datasets").insert(
        {
            "id": dataset_id,
            "name": name,
            "shape": json.dumps(list(shape)),
            "voxel_size": json.dumps(list(voxel)),
            "source": sources["image"].description,
            "created_at": now,
            "created_by": user,
            "size_bytes": size_bytes,
        }
    )
    for kind, dtype in dtypes.items():
        ws.db.table("layers").insert(
            {
                "dataset_id": dataset_id,
                "name": kind,
                "kind": kind,
                "dtype": dtype,
                "levels": levels,
                "created_at": now,
                "source": sources[kind].description if kind in sources else "empty",
            }
        )


def _layer_from_row(ws: Workspace, row: dict[str, Any]) -> Layer:
    levels = tuple(Level.from_json(level) for level in json.loads(row["levels"]))
    path = ws.dataset_dir(row["dataset_id"]) / f"{row['name']}.zarr"
    return Layer(row["dataset_id"], row["name"], row["kind"], row["dtype"], levels, path)


def _dataset_from_row(ws: Workspace, row: dict[str, Any]) -> Dataset:
    layers = {
        layer_row["name"]: _layer_from_row(ws, layer_row)
        for layer_row in ws.db["layers"].rows_where("dataset_id = ?", [row["id"]])
    }
    return Dataset(
        id=row["id"],
        name=row["name"],
        shape=tuple(json.loads(row["shape"])),
        voxel_size=tuple(json.loads(row["voxel_size"])),
        source=row["source"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        layers=layers,
        size_bytes=int(row.get("size_bytes") or 0),
    )


def list_datasets(ws: Workspace) -> list[Dataset]:
    rows = ws.db["datasets"].rows_where(order_by="created_at desc, id")
    return [_dataset_from_row(ws, row) for row in rows]


def get_dataset(ws: Workspace, dataset_id: str) -> Dataset:
    rows = list(ws.db["datasets"].rows_where("id = ?", [dataset_id]))
    if not rows:
        raise NotFound(f"No dataset {dataset_id!r}.")
    return _dataset_from_row(ws, rows[0])


def delete_dataset(ws: Workspace, dataset_id: str) -> None:
    """Remove a dataset: rows first (so it disappears at once), then its folder."""
    get_dataset(ws, dataset_id)
    trash = ws.new_tmp_dir()
    with ws.db.atomic():
        ws.db.table("layers").delete_where("dataset_id = ?", [dataset_id])
        ws.db.table("datasets").delete(dataset_id)
        if ws.dataset_dir(dataset_id).exists():
            ws.dataset_dir(dataset_id).rename(trash / dataset_id)
    meshes = ws.root / "meshes" / dataset_id  # the 3D annotator's mesh cache
    if meshes.exists():
        meshes.rename(trash / f"{dataset_id}-meshes")
    shutil.rmtree(trash, ignore_errors=True)


def rename_dataset(ws: Workspace, dataset_id: str, name: str) -> Dataset:
    get_dataset(ws, dataset_id)
    if not name.strip():
        raise BadInput("A dataset needs a name.")
    ws.db.table("datasets").update(dataset_id, {"name": name.strip()})
    return get_dataset(ws, dataset_id)


def disk_usage(path: Path) -> int:
    """Bytes used by the files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
