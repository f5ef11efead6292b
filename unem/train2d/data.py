"""Training data of the 2D trainer: labelled slices of a dataset, their targets, the
validation split, random training patches and fixed validation tiles.

Labels become class targets (uint8, IGNORE where a pixel is left out of the loss) as
`TargetMode` says. Images become float32 in [0, 1]; with three channels a slice comes
with its two neighbours (z − 1, z + 1, repeated at the ends of the volume).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unem.errors import BadInput
from unem.proofread.edits import EDIT_LAYER
from unem.proofread.mapping import non_identity_mapping
from unem.train2d.augment import augment as augment_patch
from unem.train2d.options import IGNORE, AugmentOptions, TargetMode, TrainOptions
from unem.train2d.resolution import shrink_images, shrink_labels
from unem.volumes.datasets import Dataset, Layer, get_dataset
from unem.volumes.export import relabelled
from unem.volumes.store import LABEL_KINDS, open_level
from unem.workspace import Workspace

IMAGE_DTYPES = {"uint8", "uint16", "float32"}
MAX_VALIDATION_PATCHES = 32
MAX_SAMPLED_PIXELS = 65536  # labelled pixels kept per sparse slice to centre patches on
SPARSE = 0.5  # slices with fewer labelled pixels than this share centre patches on labels


@dataclass
class TrainingData:
    """The labelled slices of a dataset, ready to cut patches from.

    Attributes
    ----------
    planes
        float32 (m, height, width) in [0, 1]: first the n chosen slices in order, then the
        neighbours of three-channel input that are not chosen slices themselves.
    targets
        uint8 (n, height, width) classes, IGNORE where a pixel is left out of the loss.
    slices
        The z of each of the n slices.
    channel_rows
        int (n, channels): the rows of `planes` that make the channels of slice i.
    scale
        What raw image values were divided by: 255 for uint8; the largest value among the
        slices read for uint16 (so 12-bit data spans [0, 1] too); 1 for float32 (clipped).
        Inference must divide by the same.
    notes
        What a user should know about the data (slices dropped, no validation, ...).
    """

    planes: np.ndarray
    targets: np.ndarray
    slices: list[int]
    channel_rows: np.ndarray
    scale: float
    n_classes: int
    depth: int
    notes: list[str] = field(default_factory=list)

    @property
    def images(self) -> np.ndarray:
        """float32 (n, height, width): the chosen slices (a view of `planes`)."""
        return self.planes[: len(self.slices)]

    @property
    def channels(self) -> int:
        return int(self.channel_rows.shape[1])

    def stack_channels(self, index: int) -> np.ndarray:
        """float32 (height, width, channels): slice `index` with its neighbours if any."""
        return np.stack([self.planes[row] for row in self.channel_rows[index]], axis=-1)


# --- slices ---------------------------------------------------------------------------------


def parse_slices(text: str, depth: int) -> list[int]:
    """The slices named by `text` ("0-19,25"; empty: all `depth` of them), sorted, unique."""
    if not text.strip():
        return list(range(depth))
    chosen: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise BadInput(
                f"Slices {text!r}: {part.strip()!r} is not a slice or a range; "
                "write them like 0-19,25."
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise BadInput(f"Slices {text!r}: the range {first}-{last} runs backwards.")
        if last >= depth:
            raise BadInput(
                f"Slices {text!r}: slice {last} is outside the volume, whose slices are "
                f"0-{depth - 1}."
            )
        chosen.update(range(first, last + 1))
    return sorted(chosen)


# --- targets --------------------------------------------------------------------------------


def make_targets(
    labels: np.ndarray, mode: TargetMode, n_classes: int, ignore_label: int | None = None
) -> np.ndarray:
    """Class targets from labels, as `TargetMode` says.

    Parameters
    ----------
    labels
        Integer labels (..., height, width): painted classes, a mask or instance ids.
    mode
        binary: non-zero → 1; binary_inverted: zero → 1; classes: the value is the class;
        painted: 0 → IGNORE, v → v − 1; membrane: 1 where a 4-neighbour has another id or
        the id is 0, else 0; foreground: non-zero → 1.
    n_classes
        Classes the model tells apart; a class at or above it is refused (BadInput).
    ignore_label
        Label value whose pixels become IGNORE (taken out before the mapping).

    Returns
    -------
    uint8 array of the same shape; `labels` is not modified.
    """
    labels = np.asarray(labels)
    targets: np.ndarray
    if mode in ("binary", "foreground"):
        targets = (labels != 0).astype(np.uint8)
    elif mode == "binary_inverted":
        targets = (labels == 0).astype(np.uint8)
    elif mode == "membrane":
        targets = instance_boundaries(labels).astype(np.uint8)
    elif mode in ("classes", "painted"):
        targets = class_targets(labels, mode, n_classes, ignore_label)
    else:
        raise BadInput(f"Unknown target mode {mode!r}.")
    if ignore_label is not None:
        targets[labels == ignore_label] = IGNORE
    return targets


def class_targets(
    labels: np.ndarray, mode: TargetMode, n_classes: int, ignore_label: int | None
) -> np.ndarray:
    """Labels that are classes themselves (classes) or classes + 1 (painted, 0 unlabelled)."""
    counted = labels if ignore_label is None else labels[labels != ignore_label]
    top = int(counted.max()) if counted.size else 0
    shift = 1 if mode == "painted" else 0
    if top - shift >= n_classes:
        what = f"painted label {top} means class {top - 1}" if shift else f"label {top}"
        raise BadInput(
            f"The {what}, but the model tells apart {n_classes} classes (0-{n_classes - 1}): "
            f"set the number of classes to {top - shift + 1}, or choose another target mode."
        )
    if shift:
        return np.where(labels == 0, IGNORE, labels.astype(np.int64) - 1).astype(np.uint8)
    return labels.astype(np.uint8)


def instance_boundaries(labels: np.ndarray) -> np.ndarray:
    """bool: pixels with id 0 or a 4-neighbour (in the last two axes) of another id."""
    boundary: np.ndarray = labels == 0
    for axis in (-2, -1):
        differs = np.diff(labels, axis=axis) != 0
        before = [slice(None)] * labels.ndim
        after = [slice(None)] * labels.ndim
        before[axis], after[axis] = slice(None, -1), slice(1, None)
        boundary[tuple(before)] |= differs
        boundary[tuple(after)] |= differs
    return boundary


# --- loading --------------------------------------------------------------------------------


def load_training_data(ws: Workspace, options: TrainOptions) -> TrainingData:
    """The chosen slices of the options' dataset with their targets (BadInput saying
    what to change when the layers cannot be trained on)."""
    dataset = get_dataset(ws, options.dataset)
    image_layer, label_layer = check_layers(dataset, options.image_layer, options.label_layer)
    slices = parse_slices(options.slices, dataset.shape[0])
    targets, labelled = read_targets(ws, label_layer, slices, options)
    check_labelled(labelled, options)
    notes = empty_notes(labelled, slices, options.target)
    slices, targets, dropped = drop_unlabelled(slices, targets)
    rows, order = channel_layout(slices, dataset.shape[0], options.channels)
    planes, scale = read_images(image_layer, order)
    planes = shrink_images(planes, options.downsample)
    targets = shrink_labels(targets, options.downsample)
    notes += dropped + class_notes(targets, options.n_classes)
    return TrainingData(
        planes, targets, slices, rows, scale, options.n_classes, dataset.shape[0], notes
    )


def check_layers(dataset: Dataset, image_name: str, label_name: str) -> tuple[Layer, Layer]:
    """The image and label layers, refused with a message if they cannot be paired."""
    image = find_layer(dataset, image_name, "image")
    labels = find_layer(dataset, label_name, "label")
    if image_name == label_name:
        raise BadInput(f"The image and label layers are both {image_name!r}: choose two layers.")
    if image.kind in LABEL_KINDS or image.dtype not in IMAGE_DTYPES:
        raise BadInput(
            f"Layer {image_name!r} holds {image.kind} ({image.dtype}), not images: choose an "
            "image layer as the image layer."
        )
    if not labels.dtype.startswith(("uint", "int", "bool")):
        raise BadInput(
            f"Layer {label_name!r} holds {labels.dtype} values; labels must be integers: "
            "choose a segmentation, ground-truth or painted layer as the label layer."
        )
    if image.shape != labels.shape:
        raise BadInput(
            f"Layer {image_name!r} is {shape_text(image.shape)} but layer {label_name!r} is "
            f"{shape_text(labels.shape)}: the image and its labels must cover the same voxels."
        )
    return image, labels


def find_layer(dataset: Dataset, name: str, role: str) -> Layer:
    if name not in dataset.layers:
        raise BadInput(
            f"Dataset {dataset.id!r} has no layer {name!r}; choose the {role} layer among: "
            f"{', '.join(dataset.layers)}."
        )
    return dataset.layers[name]


def shape_text(shape: Sequence[int]) -> str:
    """z × y × x as `slices × height × width`."""
    return f"{shape[0]} slices of {shape[1]}×{shape[2]}"


def read_targets(
    ws: Workspace, layer: Layer, slices: Sequence[int], options: TrainOptions
) -> tuple[np.ndarray, list[bool]]:
    """Targets (n, height, width) of `slices` and whether each slice holds any label.

    Converted slice by slice, so memory holds one slice of ids (maybe uint64) at a time.
    """
    targets = np.empty((len(slices), *layer.shape[1:]), dtype=np.uint8)
    labelled = []
    for index, labels in enumerate(read_labels(ws, layer, slices)):
        labelled.append(bool(labels.any()))
        targets[index] = make_targets(
            labels, options.target, options.n_classes, options.ignore_label
        )
    return targets, labelled


def read_labels(ws: Workspace, layer: Layer, slices: Sequence[int]) -> Iterator[np.ndarray]:
    """Full-resolution label slices; the segmentation layer as proofread (fragment ids
    mapped to their segments, as exports show it)."""
    array = open_level(layer.path)
    mapping = non_identity_mapping(ws.db, layer.dataset_id) if layer.name == EDIT_LAYER else {}
    for z in slices:
        plane = np.asarray(array[z])
        yield relabelled(plane, mapping) if mapping else plane


def check_labelled(labelled: Sequence[bool], options: TrainOptions) -> None:
    if not any(labelled):
        where = f"slices {options.slices}" if options.slices.strip() else "any slice"
        raise BadInput(
            f"Layer {options.label_layer!r} has no labels on {where} (every value is 0): "
            "paint some labels in Dojo first, or choose the slices or layer that hold them."
        )


def drop_unlabelled(
    slices: list[int], targets: np.ndarray
) -> tuple[list[int], np.ndarray, list[str]]:
    """The slices with at least one pixel for the loss, their targets, and a note naming
    the others (painted mode: slices nobody painted on)."""
    labelled = (targets != IGNORE).any(axis=(1, 2))
    if not labelled.any():
        raise BadInput(
            "No pixel of the chosen slices is left for the loss (all are unlabelled or carry "
            "the ignore label): paint some labels, or change the ignore label."
        )
    if labelled.all():
        return slices, targets, []
    dropped = [z for z, keep in zip(slices, labelled, strict=True) if not keep]
    kept = [z for z, keep in zip(slices, labelled, strict=True) if keep]
    note = f"Slices without labels were left out: {format_slices(dropped)}."
    return kept, targets[labelled], [note]


def empty_notes(labelled: Sequence[bool], slices: Sequence[int], mode: TargetMode) -> list[str]:
    """In dense modes an all-zero slice is trained on as it is: say so, it may be a slice
    nobody labelled."""
    empty = [z for z, some in zip(slices, labelled, strict=True) if not some]
    if mode == "painted" or not empty:
        return []
    return [
        f"Slices with no labels at all (every value 0) are trained on as they are: "
        f"{format_slices(empty)}. If nobody labelled them, leave them out with the slices option."
    ]


def class_notes(targets: np.ndarray, n_classes: int) -> list[str]:
    """Warnings about classes that never appear among the targets."""
    counts = np.bincount(targets.ravel(), minlength=256)[:n_classes]
    missing = [str(c) for c in range(n_classes) if counts[c] == 0]
    if not missing:
        return []
    return [f"No labelled pixel is of class {', '.join(missing)}: the model cannot learn it."]


def format_slices(slices: Sequence[int]) -> str:
    """[0, 1, 2, 5] → "0-2, 5"."""
    parts = []
    for _, run in itertools.groupby(enumerate(slices), key=lambda pair: pair[1] - pair[0]):
        values = [z for _, z in run]
        parts.append(str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}")
    return ", ".join(parts)


def channel_layout(
    slices: Sequence[int], depth: int, channels: int
) -> tuple[np.ndarray, list[int]]:
    """The rows of `planes` that make each slice's channels, and the z of each row.

    The chosen slices come first, in order; neighbours that are not chosen follow.
    """
    order = list(slices)
    position = {z: row for row, z in enumerate(order)}
    offsets = (0,) if channels == 1 else (-1, 0, 1)
    rows = np.empty((len(slices), len(offsets)), dtype=np.int64)
    for index, z in enumerate(slices):
        for channel, offset in enumerate(offsets):
            neighbour = min(max(z + offset, 0), depth - 1)
            if neighbour not in position:
                position[neighbour] = len(order)
                order.append(neighbour)
            rows[index, channel] = position[neighbour]
    return rows, order


def read_images(layer: Layer, order: Sequence[int]) -> tuple[np.ndarray, float]:
    """float32 (len(order), height, width) in [0, 1] and the divisor (see TrainingData)."""
    array = open_level(layer.path)
    raw = np.empty((len(order), *layer.shape[1:]), dtype=layer.dtype)
    for row, z in enumerate(order):
        raw[row] = np.asarray(array[z])
    scale = image_scale(layer.dtype, float(raw.max()) if raw.size else 0.0)
    return to_unit(raw, scale), scale


def image_scale(dtype: str, largest: float) -> float:
    """The divisor that brings raw values of `dtype` into [0, 1] (see TrainingData.scale)."""
    if dtype == "uint8":
        return 255.0
    if dtype == "uint16":
        return max(largest, 1.0)
    return 1.0


def to_unit(raw: np.ndarray, scale: float) -> np.ndarray:
    """float32 raw / scale, clipped to [0, 1]."""
    result: np.ndarray = np.clip(raw.astype(np.float32) / np.float32(scale), 0, 1)
    return result


# --- validation split -----------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Rows (positions in `slices`, not z values) for training and for validation, and a
    note for the user; unpacks as `train, validation = split`."""

    train: list[int]
    validation: list[int]
    note: str = ""

    def __iter__(self) -> Iterator[list[int]]:
        return iter((self.train, self.validation))


def split_by_slice(slices: Sequence[int], fraction: float, seed: int) -> Split:
    """Hold out round(fraction · n) slices at random (the same for the same seed), at least
    one when fraction > 0, and always leave one to train on."""
    count = len(slices)
    if count == 0:
        raise BadInput("There are no slices to train on.")
    if fraction <= 0:
        return Split(list(range(count)), [], "")
    if count == 1:
        note = "Only one slice has labels, so nothing is held out for validation: label more."
        return Split([0], [], note)
    held = min(max(round(fraction * count), 1), count - 1)
    order = np.random.default_rng(seed).permutation(count)
    return Split(sorted(order[held:].tolist()), sorted(order[:held].tolist()), "")


# --- patches --------------------------------------------------------------------------------


class PatchSampler:
    """Random training patches of the slices at `indices` (rows of `data`).

    `batch()` may be called from several threads at once: call k draws its patches from
    its own generator seeded with (seed, k), so batches do not depend on thread timing
    (only which thread gets which k).
    """

    def __init__(
        self,
        data: TrainingData,
        indices: Sequence[int],
        patch_size: int,
        batch_size: int,
        channels: int,
        augment: AugmentOptions,
        seed: int,
    ) -> None:
        if not indices:
            raise BadInput("There are no training slices to draw patches from.")
        check_channels(data, channels)
        self.data, self.indices = data, list(indices)
        self.patch_size, self.batch_size, self.channels = patch_size, batch_size, channels
        self.augment, self.seed = augment, seed
        self.centres = [labelled_pixels(data.targets[i], seed) for i in self.indices]
        weights = np.array([(data.targets[i] != IGNORE).sum() for i in self.indices], float)
        self.weights = weights / weights.sum()  # slices with more labels are seen more
        self.calls = itertools.count()
        self.lock = threading.Lock()

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """x float32 (batch, patch, patch, channels) in [0, 1], y uint8 (batch, patch, patch)."""
        with self.lock:
            call = next(self.calls)
        rng = np.random.default_rng([self.seed, call])
        size = self.patch_size
        x = np.empty((self.batch_size, size, size, self.channels), np.float32)
        y = np.empty((self.batch_size, size, size), np.uint8)
        for item in range(self.batch_size):
            x[item], y[item] = self.patch(rng)
        return x, y

    def patch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented patch of a random slice."""
        choice = int(rng.choice(len(self.indices), p=self.weights))
        index, centres = self.indices[choice], self.centres[choice]
        y0, x0 = self.corner(rng, centres)
        image, target = crop(self.data, index, y0, x0, self.patch_size, self.channels)
        return augment_patch(image, target, rng, self.augment)

    def corner(self, rng: np.random.Generator, centres: np.ndarray | None) -> tuple[int, int]:
        """Top-left corner: anywhere, or (sparse labels) so the patch holds a labelled pixel."""
        height, width = self.data.targets.shape[1:]
        size = self.patch_size
        top, left = max(height - size, 0), max(width - size, 0)
        if centres is None:
            return int(rng.integers(top + 1)), int(rng.integers(left + 1))
        cy, cx = centres[int(rng.integers(len(centres)))]
        y0 = int(cy) - int(rng.integers(size))
        x0 = int(cx) - int(rng.integers(size))
        return min(max(y0, 0), top), min(max(x0, 0), left)


def check_channels(data: TrainingData, channels: int) -> None:
    if channels != data.channels:
        raise ValueError(f"the data was loaded with {data.channels} channels, not {channels}")


def labelled_pixels(target: np.ndarray, seed: int) -> np.ndarray | None:
    """Coordinates (k, 2) of up to MAX_SAMPLED_PIXELS labelled pixels of a sparsely
    labelled slice; None when labels cover most of it (patches go anywhere)."""
    valid = target != IGNORE
    if valid.mean() >= SPARSE:
        return None
    coords = np.argwhere(valid).astype(np.int32)
    if len(coords) > MAX_SAMPLED_PIXELS:
        keep = np.random.default_rng(seed).choice(len(coords), MAX_SAMPLED_PIXELS, replace=False)
        coords = coords[np.sort(keep)]
    return coords


def crop(
    data: TrainingData, index: int, y0: int, x0: int, size: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Image (size, size, channels) and target (size, size) at (y0, x0) of slice `index`;
    a slice smaller than the patch is mirrored at its far edges to fill it."""
    rows = data.channel_rows[index, :channels]
    window = (slice(y0, y0 + size), slice(x0, x0 + size))
    image = np.moveaxis(data.planes[(rows, *window)], 0, -1)
    target = data.targets[(index, *window)]
    pad = ((0, size - target.shape[0]), (0, size - target.shape[1]))
    if pad[0][1] or pad[1][1]:
        image = np.pad(image, (*pad, (0, 0)), mode="reflect")
        target = np.pad(target, pad, mode="reflect")
    return image, target


def validation_batches(
    data: TrainingData,
    indices: Sequence[int],
    patch_size: int,
    channels: int,
    batch_size: int = 8,
    max_patches: int = MAX_VALIDATION_PATCHES,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The same tiles of the validation slices at every call, without augmentation.

    Tiles cover each slice on a grid (the last row and column flush with the edges);
    those with no labelled pixel are skipped and, past `max_patches`, evenly spaced tiles
    are kept. Yields (x, y) batches shaped as `PatchSampler.batch`'s, the last one shorter.
    """
    check_channels(data, channels)
    tiles = validation_tiles(data, indices, patch_size, max_patches)
    for start in range(0, len(tiles), batch_size):
        chunk = [
            crop(data, index, y0, x0, patch_size, channels)
            for index, y0, x0 in tiles[start : start + batch_size]
        ]
        yield (
            np.stack([image for image, _ in chunk]).astype(np.float32),
            np.stack([target for _, target in chunk]),
        )


def validation_tiles(
    data: TrainingData, indices: Sequence[int], size: int, max_patches: int
) -> list[tuple[int, int, int]]:
    """(row, y0, x0) of the validation tiles (see `validation_batches`)."""
    height, width = data.targets.shape[1:]
    tiles = [
        (index, y0, x0)
        for index in indices
        for y0 in tile_starts(height, size)
        for x0 in tile_starts(width, size)
        if (data.targets[index, y0 : y0 + size, x0 : x0 + size] != IGNORE).any()
    ]
    if len(tiles) <= max_patches:
        return tiles
    keep = np.linspace(0, len(tiles) - 1, max_patches).round().astype(int)
    return [tiles[k] for k in keep]


def tile_starts(length: int, size: int) -> list[int]:
    """Starts of tiles of `size` covering `length`, the last flush with the end."""
    if length <= size:
        return [0]
    return sorted({*range(0, length - size, size), length - size})


def describe(data: TrainingData, split: Split) -> dict[str, Any]:
    """What a job log or the trainer page shows about the data."""
    return {
        "slices": format_slices(data.slices),
        "train": format_slices([data.slices[i] for i in split.train]),
        "validation": format_slices([data.slices[i] for i in split.validation]),
        "shape": list(data.targets.shape),
        "channels": data.channels,
        "scale": data.scale,
        "notes": [*data.notes, *([split.note] if split.note else [])],
    }
