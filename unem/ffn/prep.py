"""FFN training data: local-object-mask partitions and balanced training coordinates
(google/ffn's `compute_partitions.py` and `build_coordinates.py`), kept in the workspace.

For every voxel of an object, the *fraction* of the voxels in the box of half-size `radius`
(fov//2 + deltas, z, y, x) around it that belong to the same object says how much of the
FOV the object fills: thin processes and object borders have small fractions, cell bodies
large ones. Quantising the fraction at `thresholds` gives partitions 1 … n+1 (background is
partition 0; 255 marks voxels that are never a training centre: the margin where the box
leaves the volume, and ignored labels). Training centres are drawn equally often from every
partition, so rare thin processes are seen as often as bulky interiors.

A preparation lives in `ffn/preparations/<name>/` of the workspace:
`preparation.json` (what was prepared, counts, image mean/std), `coordinates.npy`
(int32 (n, 3) z, y, x in the dataset's frame, already shuffled) and `volume.npz`
(`labels`: the ground truth of the box as training reads it, uint32 with the proofreading
merges applied and small objects cleared; `partitions`: uint8). It is written aside and
renamed into place, so a listing never sees half of one.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from unem.errors import BadInput, NotFound
from unem.ffn.options import FFNPrepOptions, parse_box
from unem.progress import Progress, no_progress
from unem.workspace import Workspace

EXCLUDED = 255  # partition of voxels that are never training centres
INFO_FILE = "preparation.json"
COORDINATES_FILE = "coordinates.npy"
VOLUME_FILE = "volume.npz"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Radius = tuple[int, int, int]


# --- partitions -------------------------------------------------------------------------


def clear_small(labels: np.ndarray, min_size: int, background: Sequence[int] = (0,)) -> np.ndarray:
    """A copy of `labels` with the background labels and objects under `min_size` voxels
    set to 0 (google/ffn's `clear_dust`, counting voxels per id)."""
    ids, inverse = dense_ids(labels)
    counts = np.bincount(inverse.reshape(-1), minlength=len(ids))
    keep = (counts >= min_size) & ~np.isin(ids, list(background))
    cleared: np.ndarray = np.where(keep, ids, 0).astype(labels.dtype)[inverse]
    return cleared


def dense_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct labels and, for each voxel, the index of its label (int32).

    Like `np.unique(return_inverse=True)`, but a binary search over the few distinct ids
    instead of a stable sort of every voxel: several times faster on large volumes."""
    ids = np.unique(labels)
    return ids, np.searchsorted(ids, labels).astype(np.int32)


def _box_sums(mask: np.ndarray, radius: Radius) -> np.ndarray:
    """Sum of `mask` over the box of `radius` around each voxel at least `radius` away from
    its border (the result is `mask` shrunk by 2·radius), from a summed-volume table."""
    table = np.zeros(tuple(s + 1 for s in mask.shape), dtype=np.int32)
    inner = table[1:, 1:, 1:]
    np.cumsum(mask, axis=0, dtype=np.int32, out=inner)
    np.cumsum(inner, axis=1, out=inner)
    np.cumsum(inner, axis=2, out=inner)
    shape = [s - 2 * r for s, r in zip(mask.shape, radius, strict=True)]
    # box of centre i: table rows i - r (low corner) and i + r + 1 (high), shifted by r
    low = [slice(0, n) for n in shape]
    high = [slice(2 * r + 1, 2 * r + 1 + n) for r, n in zip(radius, shape, strict=True)]
    total = np.zeros(shape, dtype=np.int32)
    for corner in range(8):  # inclusion-exclusion over the 8 corners of each box
        picks = tuple(high[a] if (corner >> a) & 1 else low[a] for a in range(3))
        if bin(corner).count("1") % 2:  # an odd number of high corners adds
            total += table[picks]
        else:
            total -= table[picks]
    return total


def object_fractions(labels: np.ndarray, radius: Radius) -> np.ndarray:
    """For every voxel of an object (label > 0), the fraction of the (2r+1)³ box around it
    with the same label; 0 on background. float64, the shape of `labels`.

    Boxes reaching outside the volume count the outside as other labels (those voxels are
    in the margin, which `compute_partitions` excludes). Each object is handled inside its
    bounding box grown by `radius`, so the cost follows the objects' sizes, not their count
    times the volume."""
    from scipy import ndimage

    ids, dense = dense_ids(labels)
    if ids.size and ids[0] != 0:
        dense += 1  # no background: index 0 stays unused
    # Padding with background once lets every object's grown box stay inside the array.
    padded = np.pad(dense, [(r, r) for r in radius])
    fractions = np.zeros(labels.shape, dtype=np.float64)
    volume = float(np.prod([2 * r + 1 for r in radius]))
    for index, box in enumerate(ndimage.find_objects(dense), start=1):
        if box is None:
            continue
        grown = tuple(slice(b.start, b.stop + 2 * r) for b, r in zip(box, radius, strict=True))
        own = dense[box] == index
        sums = _box_sums(padded[grown] == index, radius)
        fractions[box][own] = sums[own] / volume
    return fractions


def compute_partitions(
    labels: np.ndarray,
    radius: Radius,
    thresholds: Sequence[float],
    ignore: Sequence[int] = (),
    include_background: bool = True,
) -> np.ndarray:
    """uint8 partitions of `labels` (already cleared: 0 is background).

    0: background; 1 … len(thresholds)+1: object voxels whose fraction (`object_fractions`)
    is below thresholds[0], in [thresholds[0], thresholds[1]), …, at least thresholds[-1];
    255: never a centre (within `radius` of the volume's edge, an ignored label, or
    background when `include_background` is false)."""
    fractions = object_fractions(np.where(np.isin(labels, list(ignore)), 0, labels), radius)
    partitions = (1 + np.searchsorted(np.asarray(thresholds), fractions, side="right")).astype(
        np.uint8
    )
    partitions[labels == 0] = 0 if include_background else EXCLUDED
    if len(ignore):
        partitions[np.isin(labels, list(ignore))] = EXCLUDED
    margin = np.ones(labels.shape, dtype=bool)
    margin[tuple(slice(r, n - r) for r, n in zip(radius, labels.shape, strict=True))] = False
    partitions[margin] = EXCLUDED
    return partitions


def build_coordinates(
    partitions: np.ndarray, rng: np.random.Generator, max_per_partition: int = 0
) -> tuple[np.ndarray, dict[int, int]]:
    """Training centres (int64 (n, 3) z, y, x in `partitions`' frame), shuffled, with every
    partition drawn as often as the largest (capped at `max_per_partition` when > 0), and
    the voxel count of each partition. Partition 255 is never drawn."""
    flat = partitions.reshape(-1)
    values, counts = np.unique(flat, return_counts=True)
    chosen = [(int(v), int(c)) for v, c in zip(values, counts, strict=True) if v != EXCLUDED]
    if not chosen:
        return np.zeros((0, 3), dtype=np.int64), {}
    target = max(c for _, c in chosen)
    if max_per_partition:
        target = min(target, max_per_partition)
    drawn = []
    for value, _ in chosen:
        members = rng.permutation(np.flatnonzero(flat == value))
        drawn.append(np.resize(members, target))  # repeats the permutation as needed
    indices = np.concatenate(drawn)
    rng.shuffle(indices)
    return np.stack(np.unravel_index(indices, partitions.shape), axis=1), dict(chosen)


# --- reading the dataset ----------------------------------------------------------------


def read_labels(
    ws: Workspace, dataset_id: str, layer_name: str, box: tuple[slice, ...]
) -> np.ndarray:
    """The label layer inside `box`, as proofreaders see it (Dojo's merges applied)."""
    from unem.proofread.edits import EDIT_LAYER
    from unem.proofread.mapping import non_identity_mapping
    from unem.volumes.datasets import get_dataset
    from unem.volumes.export import relabelled
    from unem.volumes.store import open_level

    layer = get_dataset(ws, dataset_id).layer(layer_name)
    if layer.kind not in ("segmentation", "groundtruth"):
        raise BadInput(f"Layer {layer_name!r} is a {layer.kind} layer, not instance labels.")
    labels = np.asarray(open_level(layer.path)[box])
    mapping = non_identity_mapping(ws.db, dataset_id) if layer_name == EDIT_LAYER else {}
    return relabelled(labels, mapping) if mapping else labels


def read_image(
    ws: Workspace, dataset_id: str, layer_name: str, box: tuple[slice, ...]
) -> np.ndarray:
    from unem.volumes.datasets import get_dataset
    from unem.volumes.store import open_level

    layer = get_dataset(ws, dataset_id).layer(layer_name)
    if layer.kind != "image":
        raise BadInput(f"Layer {layer_name!r} is a {layer.kind} layer, not an image.")
    return np.asarray(open_level(layer.path)[box])


def dataset_box(ws: Workspace, options: FFNPrepOptions) -> tuple[slice, slice, slice]:
    """The options' sub-box of the dataset, checked: it must hold more than the margin."""
    from unem.volumes.datasets import get_dataset

    dataset = get_dataset(ws, options.dataset)
    try:
        box = parse_box(options.box, dataset.shape)
    except ValueError as error:
        raise BadInput(str(error)) from error
    radius = options.model_options().lom_radius
    small = [
        f"{'zyx'[i]} {s.stop - s.start} ≤ {2 * r}"
        for i, (s, r) in enumerate(zip(box, radius, strict=True))
        if s.stop - s.start <= 2 * r
    ]
    if small:
        raise BadInput(
            f"The box is too small for the FOV and deltas (radius {list(radius)} z, y, x "
            f"leaves no training centre: {', '.join(small)})."
        )
    return box


# --- preparations in the workspace ------------------------------------------------------


@dataclass(frozen=True)
class Preparation:
    name: str
    folder: Path
    info: dict[str, Any]

    @property
    def box(self) -> tuple[slice, slice, slice]:
        z, y, x = (slice(a, b) for a, b in self.info["box"])
        return (z, y, x)

    def coordinates(self) -> np.ndarray:
        """int32 (n, 3) training centres z, y, x in the dataset's frame (memory-mapped)."""
        coordinates: np.ndarray = np.load(self.folder / COORDINATES_FILE, mmap_mode="r")
        return coordinates

    def volume(self) -> tuple[np.ndarray, np.ndarray]:
        """The labels and partitions of the box."""
        with np.load(self.folder / VOLUME_FILE) as data:
            return data["labels"], data["partitions"]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.info}


def preparations_dir(ws: Workspace) -> Path:
    path = ws.root / "ffn" / "preparations"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_preparation_name(name: str) -> str:
    if not NAME.match(name):
        raise BadInput(
            f"Preparation name {name!r}: use letters, digits, '.', '-' and '_' (at most 64)."
        )
    return name


def list_preparations(ws: Workspace) -> list[Preparation]:
    """Every complete preparation, newest first."""
    found = []
    for info_path in preparations_dir(ws).glob(f"*/{INFO_FILE}"):
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            continue
        found.append(Preparation(info_path.parent.name, info_path.parent, info))
    return sorted(found, key=lambda p: str(p.info.get("created_at", "")), reverse=True)


def get_preparation(ws: Workspace, name: str) -> Preparation:
    for preparation in list_preparations(ws):
        if preparation.name == name:
            return preparation
    known = ", ".join(p.name for p in list_preparations(ws)) or "none yet: run ffn-prep first"
    raise NotFound(f"No FFN preparation {name!r} in this workspace (preparations: {known}).")


def delete_preparation(ws: Workspace, name: str) -> None:
    shutil.rmtree(get_preparation(ws, name).folder)


def save_preparation(
    ws: Workspace,
    name: str,
    info: dict[str, Any],
    coordinates: np.ndarray,
    labels: np.ndarray,
    partitions: np.ndarray,
) -> Preparation:
    """Write a preparation aside, then rename it into place (replacing a namesake)."""
    check_preparation_name(name)
    tmp = ws.new_tmp_dir()
    try:
        staged = tmp / name
        staged.mkdir()
        np.save(staged / COORDINATES_FILE, coordinates.astype(np.int32))
        np.savez_compressed(staged / VOLUME_FILE, labels=labels, partitions=partitions)
        (staged / INFO_FILE).write_text(json.dumps(info, indent=2))
        target = preparations_dir(ws) / name
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return get_preparation(ws, name)


# --- the job's work ---------------------------------------------------------------------


def prepare(
    ws: Workspace,
    options: FFNPrepOptions,
    name: str,
    progress: Progress = no_progress,
    log: Callable[[str], None] = print,
) -> Preparation:
    """Compute and store the preparation `name` (see the module's docstring)."""
    box = dataset_box(ws, options)
    geometry = options.model_options()
    radius = geometry.lom_radius
    progress(0, 4, "reading the labels and the image")
    raw = read_labels(ws, options.dataset, options.label_layer, box)
    image = read_image(ws, options.dataset, options.image_layer, box)
    mean, std = float(image.mean(dtype=np.float64)), float(image.std(dtype=np.float64))
    progress(1, 4, "clearing small objects")
    labels = _compact(clear_small(raw, options.min_size, options.background_labels))
    ignore = _mapped_ignore(raw, labels, options.ignore_labels)
    progress(2, 4, "computing the local object mask partitions")
    partitions = compute_partitions(
        labels, radius, options.thresholds, ignore, options.include_background
    )
    progress(3, 4, "drawing balanced coordinates")
    rng = np.random.default_rng(options.seed)
    coordinates, counts = build_coordinates(partitions, rng, options.max_per_partition)
    if not len(coordinates):
        raise BadInput("No training centre: every voxel is in the margin or ignored.")
    coordinates += np.array([s.start for s in box])
    info = {
        **options.model_dump(exclude={"name", "fov", "deltas"}),
        "fov": list(geometry.fov),
        "deltas": list(geometry.deltas),
        "lom_radius": list(radius),
        "box": [[s.start, s.stop] for s in box],
        "image_mean": mean,
        "image_std": std if std > 0 else 1.0,
        "objects": int(np.count_nonzero(np.unique(labels))),
        "partition_voxels": {str(k): v for k, v in counts.items()},
        "coordinates": len(coordinates),
        "voxel_size": list(_voxel_size(ws, options.dataset)),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    summary = {k: info[k] for k in ("objects", "partition_voxels", "coordinates")}
    log(f"preparation {name}: {json.dumps(summary)}")
    preparation = save_preparation(ws, name, info, coordinates, labels, partitions)
    progress(4, 4, f"{len(coordinates)} coordinates over {len(counts)} partitions")
    return preparation


def _compact(labels: np.ndarray) -> np.ndarray:
    """`labels` as uint32 (objects keep their ids when they fit; else renumbered 1…n)."""
    if labels.size == 0 or (labels.min() >= 0 and labels.max() <= np.iinfo(np.uint32).max):
        return labels.astype(np.uint32)
    ids, inverse = dense_ids(labels)
    offset = 0 if ids[0] == 0 else 1
    return (inverse + offset).astype(np.uint32)


def _mapped_ignore(raw: np.ndarray, labels: np.ndarray, ignore: Sequence[int]) -> list[int]:
    """The ids in `labels` of the voxels that had an ignored label in `raw`."""
    if not ignore:
        return []
    return [int(i) for i in np.unique(labels[np.isin(raw, list(ignore))]) if i != 0]


def _voxel_size(ws: Workspace, dataset_id: str) -> tuple[float, float, float]:
    from unem.volumes.datasets import get_dataset

    return get_dataset(ws, dataset_id).voxel_size
