"""Evaluate a segmentation layer against a ground-truth layer, and keep the reports.

Two modes:

- **instance**: SNEMI3D Rand split/merge/F and adapted Rand error, VI split/merge in bits
  (conventions of `unem.metrics`: split = over-segmentation, merge = under-segmentation),
  the same per slice, and the worst split objects and merging segments with a voxel to
  open the viewer at.
- **semantic**: Jaccard, Dice, conformity, precision, recall and F1 of a mask: a prediction
  layer thresholded at `threshold`, or any other layer's non-zero voxels, against the
  ground truth's non-zero voxels; the same per slice.

The proofread `segmentation` layer is scored as Dojo shows it: the fragment → segment
mapping is applied (to the contingency table, so a merge costs nothing to evaluate).

Memory stays bounded whatever the volume: layers are read in blocks of about
`BLOCK_VOXELS` voxels (whole slices, or tiles of a slice when one slice is larger), each
slice's contingency table is computed on its own, and the tables are summed pair by pair
(`PairSums`). Worst offenders are located afterwards by reading back, for each, the one
tile of a slice that holds most of it.

Reports of evaluations are kept in the workspace by `unem.evaluation_reports`.
`unem.metrics` (and scipy with it) is imported only when an evaluation runs, so a server
that imports this module to list reports never loads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from unem.errors import BadInput, NotFound
from unem.progress import Progress, no_progress
from unem.workspace import Workspace

if TYPE_CHECKING:
    from unem.metrics import Contingency, Offender, WorstOffenders
    from unem.volumes.datasets import Layer

INSTANCE, SEMANTIC = "instance", "semantic"
MODES = (INSTANCE, SEMANTIC)
BLOCK_VOXELS = 1 << 23  # per block read: two uint64 blocks of this size take 128 MiB
REDUCE_AT = 1 << 18  # pending pairs summed once they outnumber this (and the summed ones)
OFFENDERS = 10
# --- results -------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass(frozen=True)
class Evaluation:
    """Scores of a segmentation against ground truth over a region of slices.

    `scores` holds the mode's scores (`unem.evaluation_reports.SCORES`); `per_slice` holds
    columns: "z", the same scores for each slice on its own, and "voxels" scored in it.
    `offenders` (instance mode only) are the worst split objects and merging segments,
    with locations in dataset coordinates.
    """

    mode: str
    voxels: int
    scores: dict[str, float]
    per_slice: dict[str, list[float]]
    offenders: WorstOffenders | None = None
    objects: int = 0  # ground-truth objects scored (instance mode)
    segments: int = 0  # segments overlapping them (instance mode; 0, unlabelled, excepted)

    def to_json(self) -> dict[str, Any]:
        """The evaluation as JSON; undefined scores (NaN, −∞) become null."""
        return {
            "mode": self.mode,
            "voxels": self.voxels,
            "objects": self.objects,
            "segments": self.segments,
            "scores": {name: _finite(value) for name, value in self.scores.items()},
            "per_slice": {k: [_finite(v) for v in vs] for k, vs in self.per_slice.items()},
            "offenders": None if self.offenders is None else self.offenders.to_json(),
        }


# --- what is read: slices, a rectangle, blocks ----------------------------------------------


@dataclass(frozen=True)
class Region:
    """Slices `planes` (ascending z) of the rectangle rows[0]:rows[1] × columns[0]:columns[1]."""

    planes: tuple[int, ...]
    rows: tuple[int, int]
    columns: tuple[int, int]

    @property
    def plane_voxels(self) -> int:
        return (self.rows[1] - self.rows[0]) * (self.columns[1] - self.columns[0])


def region_of(shape: Sequence[int], slices: str = "", box: Sequence[int] | None = None) -> Region:
    """The region of a (z, y, x) volume named by `slices` ("0-19,25"; empty: all) and `box`
    (z0, y0, x0, z1, y1, x1, stops exclusive; None: the whole volume)."""
    from unem.train2d.data import parse_slices

    depth, height, width = (int(size) for size in shape)
    if box is not None and len(box) != 6:
        raise BadInput("The box is six numbers: z0, y0, x0, z1, y1, x1.")
    z0, y0, x0, z1, y1, x1 = (0, 0, 0, depth, height, width) if box is None else box
    inside = 0 <= z0 < z1 <= depth and 0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width
    if not inside:
        raise BadInput(
            f"The box {list(box or ())} is empty or leaves the volume (z, y, x) = "
            f"{depth, height, width}; give z0, y0, x0, z1, y1, x1 with stops exclusive."
        )
    planes = tuple(z for z in parse_slices(slices, depth) if z0 <= z < z1)
    if not planes:
        raise BadInput(f"No slice of {slices!r} lies in the box's slices {z0}-{z1 - 1}.")
    return Region(planes, (int(y0), int(y1)), (int(x0), int(x1)))


Tile = tuple[int, int, int, int]  # y0, y1, x0, x1


def _tiles(region: Region, budget: int) -> list[Tile]:
    (y0, y1), (x0, x1) = region.rows, region.columns
    if region.plane_voxels <= budget:
        return [(y0, y1, x0, x1)]
    tile_width = min(x1 - x0, budget)
    tile_height = max(1, budget // tile_width)
    return [
        (y, min(y + tile_height, y1), x, min(x + tile_width, x1))
        for y in range(y0, y1, tile_height)
        for x in range(x0, x1, tile_width)
    ]


def _plane_groups(planes: Sequence[int], depth: int) -> Iterator[list[int]]:
    """Runs of consecutive slices, at most `depth` long (each is one read per tile)."""
    group: list[int] = []
    for z in planes:
        if group and (z != group[-1] + 1 or len(group) == depth):
            yield group
            group = []
        group.append(z)
    if group:
        yield group


def _read(array: Any, group: Sequence[int], tile: Tile) -> np.ndarray:
    y0, y1, x0, x1 = tile
    return np.asarray(array[group[0] : group[-1] + 1, y0:y1, x0:x1])


# --- sums of pair counts over blocks -------------------------------------------------------

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]  # ground-truth ids, segment ids, voxels


def _ids(values: np.ndarray, name: str) -> np.ndarray:
    if np.issubdtype(values.dtype, np.signedinteger) and values.size and values.min() < 0:
        raise BadInput(f"The {name} holds negative labels; ids must be 0 or more.")
    return values.astype(np.uint64, copy=False)


def sum_pairs(groundtruth: np.ndarray, segments: np.ndarray, counts: np.ndarray) -> Pairs:
    """The distinct (ground-truth id, segment id) pairs, sorted, and their summed counts."""
    if counts.size == 0:
        empty = np.zeros(0, np.uint64)
        return empty, empty.copy(), np.zeros(0, np.int64)
    gt_ids, gt_index = np.unique(groundtruth, return_inverse=True)
    seg_ids, seg_index = np.unique(segments, return_inverse=True)
    keys = gt_index.reshape(-1).astype(np.int64) * seg_ids.size + seg_index.reshape(-1)
    pairs, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse.reshape(-1), weights=counts, minlength=pairs.size)
    # float sums of int counts stay exact below 2**53 voxels
    return (
        gt_ids[pairs // seg_ids.size],
        seg_ids[pairs % seg_ids.size],
        np.rint(sums).astype(np.int64),
    )


@dataclass
class PairSums:
    """Pair counts summed over many tables in bounded memory: pending pairs are summed
    whenever they outnumber both `REDUCE_AT` and the pairs summed so far."""

    parts: list[Pairs] = field(default_factory=list)
    pending: int = 0
    summed: int = 0

    def add(self, pairs: Pairs) -> None:
        self.parts.append(pairs)
        self.pending += pairs[2].size
        if self.pending > max(REDUCE_AT, self.summed):
            self.total()

    def total(self) -> Pairs:
        """Every pair added so far, distinct and sorted, with its count."""
        columns = zip(*self.parts, strict=True) if self.parts else ((), (), ())
        gt, seg, counts = (np.concatenate(c) if c else np.zeros(0, np.uint64) for c in columns)
        summed = sum_pairs(gt, seg, counts)
        self.parts, self.pending, self.summed = [summed], 0, summed[2].size
        return summed


@dataclass
class Largest:
    """For each id, the unit (a tile of a slice) holding most of its voxels so far."""

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    pending: int = 0
    kept: int = 0

    def add(self, ids: np.ndarray, counts: np.ndarray, unit: int) -> None:
        self.parts.append((ids, counts, np.full(ids.size, unit, np.int64)))
        self.pending += ids.size
        if self.pending > max(REDUCE_AT, self.kept):
            self.reduce()

    def reduce(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted ids and the unit of each."""
        ids, counts, units = (np.concatenate(c) for c in zip(*self.parts, strict=True))
        order = np.lexsort((-counts, ids))
        ids, counts, units = ids[order], counts[order], units[order]
        first = np.ones(ids.size, bool)
        first[1:] = ids[1:] != ids[:-1]
        self.parts = [(ids[first], counts[first], units[first])]
        self.pending, self.kept = 0, int(first.sum())
        return ids[first], units[first]


def _voxels_by_id(ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-zero ids and their summed counts."""
    keep = ids != 0
    unique, inverse = np.unique(ids[keep], return_inverse=True)
    sums = np.bincount(inverse.reshape(-1), weights=counts[keep], minlength=unique.size)
    return unique, sums.astype(np.int64)


# --- mappings (the proofread segmentation) ------------------------------------------------


@dataclass(frozen=True)
class Relabel:
    """A fragment → segment mapping as sorted arrays; ids not in it map to themselves."""

    keys: np.ndarray
    values: np.ndarray

    @staticmethod
    def of(mapping: Mapping[int, int] | None) -> Relabel:
        items = sorted((mapping or {}).items())
        keys = np.array([k for k, _ in items], np.uint64)
        return Relabel(keys, np.array([v for _, v in items], np.uint64))

    def __bool__(self) -> bool:
        return bool(self.keys.size)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        if self.keys.size == 0:
            return ids
        index = np.minimum(np.searchsorted(self.keys, ids), self.keys.size - 1)
        hit = self.keys[index] == ids
        mapped: np.ndarray = np.where(hit, self.values[index], ids)
        return mapped


# --- instance mode --------------------------------------------------------------------------


def _plane_pairs(seg: np.ndarray, gt: np.ndarray, relabels: tuple[Relabel, Relabel]) -> Pairs:
    """The pairs of one tile of a slice, ground truth 0 included, mappings applied."""
    from unem.metrics import contingency_table

    table = contingency_table(seg, gt, ignore_groundtruth=())
    gt_ids = _ids(table.groundtruth_ids, "ground truth")[table.groundtruth_index]
    seg_ids = _ids(table.segment_ids, "segmentation")[table.segment_index]
    if not (relabels[0] or relabels[1]):
        return gt_ids, seg_ids, table.counts  # distinct and sorted already
    return sum_pairs(relabels[1](gt_ids), relabels[0](seg_ids), table.counts)


def _contingency(pairs: Pairs) -> Contingency:
    """The metrics' contingency table of the pairs with a ground-truth object (id ≠ 0)."""
    from unem.metrics import Contingency

    gt, seg, counts = pairs
    foreground = gt != 0
    gt, seg, counts = gt[foreground], seg[foreground], counts[foreground]
    gt_ids, gt_index = np.unique(gt, return_inverse=True)
    seg_ids, seg_index = np.unique(seg, return_inverse=True)
    return Contingency(gt_ids, seg_ids, gt_index.reshape(-1), seg_index.reshape(-1), counts)


def _instance_scores(table: Contingency) -> dict[str, float]:
    # unem.metrics scores whole volumes through these; here tables are summed block-wise
    from unem.metrics import _rand, _vi

    rand, vi = _rand(table, 0.5), _vi(table)
    return {
        "rand_split": rand.rand_split,
        "rand_merge": rand.rand_merge,
        "rand_f": rand.rand_f,
        "adapted_rand_error": rand.adapted_rand_error,
        "vi_split": vi.split,
        "vi_merge": vi.merge,
        "vi_total": vi.total,
    }


@dataclass(frozen=True, eq=False)
class _Side:
    """One side of the table (objects or segments): ids, pair index, bits and voxels."""

    ids: np.ndarray
    index: np.ndarray
    bits: np.ndarray
    voxels: np.ndarray


Locate = Callable[[int], tuple[int, int, int]]


def _ranked(
    side: _Side, other: _Side, counts: np.ndarray, n: int, locate: Locate
) -> tuple[Offender, ...]:
    """The `n` ids with the most bits (ties: most partners), worst first (as unem.metrics)."""
    from unem.metrics import PARTNERS_SHOWN, Offender

    partners = np.bincount(side.index, minlength=side.ids.size)
    ranked = np.lexsort((-partners, -side.bits))[:n]
    out = []
    for k in ranked[side.bits[ranked] > 0]:
        pairs = np.flatnonzero(side.index == k)
        pairs = pairs[np.argsort(-counts[pairs], kind="stable")][:PARTNERS_SHOWN]
        overlaps = tuple((int(other.ids[other.index[p]]), int(counts[p])) for p in pairs)
        label = int(side.ids[k])
        voxels, bits = int(side.voxels[k]), float(side.bits[k])
        out.append(Offender(label, voxels, bits, int(partners[k]), locate(label), overlaps))
    return tuple(out)


@dataclass
class _Located:
    """Finds a voxel of an id: in the unit (slice tile) holding most of it, the one nearest
    the centroid of its voxels there."""

    array: Any
    relabel: Relabel
    largest: Largest
    units: list[tuple[int, Tile]]

    def __call__(self, label: int) -> tuple[int, int, int]:
        ids, units = self.largest.reduce()
        z, tile = self.units[int(units[np.searchsorted(ids, label)])]
        plane = self.relabel(_ids(_read(self.array, [z], tile)[0], "layer"))
        ys, xs = np.nonzero(plane == label)
        nearest = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        return z, tile[0] + int(ys[nearest]), tile[2] + int(xs[nearest])


@dataclass
class _InstanceRun:
    """Instance scores summed slice by slice, tile by tile."""

    relabels: tuple[Relabel, Relabel]  # segmentation, ground truth
    volume: PairSums = field(default_factory=PairSums)
    largest: tuple[Largest, Largest] = field(default_factory=lambda: (Largest(), Largest()))
    units: list[tuple[int, Tile]] = field(default_factory=list)
    columns: dict[str, list[float]] = field(default_factory=dict)

    def add_tile(self, z: int, tile: Tile, seg: np.ndarray, gt: np.ndarray) -> Pairs:
        pairs = _plane_pairs(seg, gt, self.relabels)
        unit = len(self.units)
        self.units.append((z, tile))
        self.largest[0].add(*_voxels_by_id(pairs[0], pairs[2]), unit)
        self.largest[1].add(*_voxels_by_id(pairs[1], pairs[2]), unit)
        return pairs

    def finish_slice(self, z: int, parts: list[Pairs]) -> None:
        if len(parts) == 1:
            pairs = parts[0]
        else:
            gt, seg, counts = (np.concatenate(c) for c in zip(*parts, strict=True))
            pairs = sum_pairs(gt, seg, counts)
        self.volume.add(pairs)
        table = _contingency(pairs)
        row = {"z": z, **_instance_scores(table), "voxels": table.voxels}
        for name, value in row.items():
            self.columns.setdefault(name, []).append(value)

    def result(self, segmentation: Any, groundtruth: Any, n: int) -> Evaluation:
        everything = self.volume.total()
        table = _contingency(everything)
        locate_objects = _Located(groundtruth, self.relabels[1], self.largest[0], self.units)
        locate_segments = _Located(segmentation, self.relabels[0], self.largest[1], self.units)
        return Evaluation(
            mode=INSTANCE,
            voxels=table.voxels,
            scores=_instance_scores(table),
            per_slice=self.columns,
            offenders=_worst(table, everything, n, locate_objects, locate_segments),
            objects=int(table.groundtruth_ids.size),
            segments=int(np.count_nonzero(table.segment_ids)),
        )


def _worst(
    table: Contingency, everything: Pairs, n: int, locate_objects: Locate, locate_segments: Locate
) -> WorstOffenders:
    """The worst split objects and merging segments, as `unem.metrics.worst_offenders`."""
    from unem.metrics import WorstOffenders, _entropies

    if table.counts.size == 0 or n == 0:
        return WorstOffenders((), ())
    split, merge = _entropies(table)
    n_gt, n_seg = table.groundtruth_ids.size, table.segment_ids.size
    gt_bits = np.bincount(table.groundtruth_index, weights=split, minlength=n_gt)
    seg_bits = np.bincount(table.segment_index, weights=merge, minlength=n_seg)
    seg_bits[table.segment_ids == 0] = 0.0  # unlabelled is not a segment to proofread
    # a segment's voxels in the whole region, ground-truth background included
    seg_ids, inverse = np.unique(everything[1], return_inverse=True)
    seg_voxels = np.bincount(inverse.reshape(-1), weights=everything[2], minlength=seg_ids.size)
    seg_voxels = seg_voxels[np.searchsorted(seg_ids, table.segment_ids)]
    objects = _Side(table.groundtruth_ids, table.groundtruth_index, gt_bits,
                    table.groundtruth_sizes())  # fmt: skip
    segments = _Side(table.segment_ids, table.segment_index, seg_bits, seg_voxels)
    return WorstOffenders(
        _ranked(objects, segments, table.counts, n, locate_objects),
        _ranked(segments, objects, table.counts, n, locate_segments),
    )


# --- semantic mode --------------------------------------------------------------------------

PREDICTION_SCALE = {"uint8": 255.0, "uint16": 65535.0}  # stored probability × scale


def predicted_mask(block: np.ndarray, threshold: float | None) -> np.ndarray:
    """Where a layer predicts the object: probability ≥ `threshold` (uint8 and uint16 hold
    probability × 255 or × 65535, floats the probability), or, with no threshold, the
    non-zero voxels (a binary or label layer)."""
    if threshold is None or block.dtype == np.bool_:
        nonzero: np.ndarray = block != 0
        return nonzero
    scale = PREDICTION_SCALE.get(block.dtype.name)
    if scale is not None:
        mask: np.ndarray = block.astype(np.float32) / np.float32(scale) >= threshold
        return mask
    return np.nan_to_num(block.astype(np.float32)) >= threshold


def mask_scores_of(tp: int, fp: int, fn: int) -> dict[str, float]:
    """`unem.metrics.mask_scores` from voxel counts (summed over blocks), same conventions."""
    empty = tp + fp + fn == 0
    errors = fp + fn

    def ratio(numerator: int, denominator: int) -> float:
        if denominator == 0:
            return 1.0 if empty else 0.0
        return numerator / denominator

    dice = ratio(2 * tp, 2 * tp + errors)
    return {
        "jaccard": ratio(tp, tp + errors),
        "dice": dice,
        "conformity": 1.0 if empty else (1.0 - errors / tp if tp else -math.inf),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": dice,
        "true_positive": tp,
        "false_positive": fp,
        "false_negative": fn,
    }


def _semantic(
    segmentation: Any, groundtruth: Any, region: Region, threshold: float | None,
    tiles: list[Tile], groups: list[list[int]], progress: Progress,
) -> Evaluation:  # fmt: skip
    counts = {z: np.zeros(3, np.int64) for z in region.planes}  # tp, fp, fn
    for done, group in enumerate(groups, 1):
        for tile in tiles:
            predicted = predicted_mask(_read(segmentation, group, tile), threshold)
            truth = _read(groundtruth, group, tile) != 0
            tp = np.count_nonzero(predicted & truth, axis=(1, 2))
            fp = np.count_nonzero(predicted, axis=(1, 2)) - tp
            fn = np.count_nonzero(truth, axis=(1, 2)) - tp
            for i, z in enumerate(group):
                counts[z] += (tp[i], fp[i], fn[i])
        progress(done, len(groups), f"slices {group[0]}-{group[-1]}")
    columns: dict[str, list[float]] = {}
    for z, (tp, fp, fn) in counts.items():
        row = {"z": z, **mask_scores_of(int(tp), int(fp), int(fn)), "voxels": region.plane_voxels}
        for name, value in row.items():
            columns.setdefault(name, []).append(value)
    tp, fp, fn = (int(total) for total in np.sum(list(counts.values()), axis=0))
    voxels = region.plane_voxels * len(region.planes)
    return Evaluation(SEMANTIC, voxels, mask_scores_of(tp, fp, fn), columns)


# --- evaluating ---------------------------------------------------------------------------


def evaluate_arrays(
    segmentation: Any,
    groundtruth: Any,
    *,
    mode: str = INSTANCE,
    threshold: float | None = None,
    slices: str = "",
    box: Sequence[int] | None = None,
    segmentation_mapping: Mapping[int, int] | None = None,
    groundtruth_mapping: Mapping[int, int] | None = None,
    offenders: int = OFFENDERS,
    block_voxels: int = BLOCK_VOXELS,
    progress: Progress = no_progress,
) -> Evaluation:
    """Score a segmentation against ground truth, reading both in blocks.

    Parameters
    ----------
    segmentation, groundtruth : (z, y, x) arrays of the same shape
        NumPy or zarr arrays (anything sliced into NumPy arrays). Instance mode: label ids
        of any integer dtype (0 = unlabelled in the segmentation, background in the truth).
        Semantic mode: a mask (non-zero = in), or a prediction thresholded at `threshold`.
    mode : "instance" or "semantic"
    threshold : float, optional
        Semantic mode: the probability at or above which a prediction says "object" (uint8
        values are probability × 255, uint16 × 65535). None: non-zero voxels.
    slices, box
        The region scored (see `region_of`); offender locations are in array coordinates.
    segmentation_mapping, groundtruth_mapping : {fragment: segment}, optional
        Applied to the ids before scoring (the proofread segmentation's mapping).
    offenders : int
        How many worst split objects and worst merging segments to list (instance mode).
    block_voxels : int
        Voxels per block read: memory use is a small multiple of this, whatever the volume.
    """
    shape = tuple(np.shape(segmentation))
    if len(shape) != 3 or shape != tuple(np.shape(groundtruth)):
        raise BadInput(
            f"Evaluation needs two (z, y, x) volumes of the same shape, not {shape} and "
            f"{tuple(np.shape(groundtruth))}."
        )
    if mode not in MODES:
        raise BadInput(f"The mode is one of {', '.join(MODES)}, not {mode!r}.")
    region = region_of(shape, slices, box)
    budget = max(1, int(block_voxels))
    tiles = _tiles(region, budget)
    depth = max(1, budget // region.plane_voxels) if len(tiles) == 1 else 1
    groups = list(_plane_groups(region.planes, depth))
    if mode == SEMANTIC:
        return _semantic(segmentation, groundtruth, region, threshold, tiles, groups, progress)
    run = _InstanceRun((Relabel.of(segmentation_mapping), Relabel.of(groundtruth_mapping)))
    _instance(run, segmentation, groundtruth, tiles, groups, progress)
    return run.result(segmentation, groundtruth, offenders)


def _instance(
    run: _InstanceRun, segmentation: Any, groundtruth: Any, tiles: list[Tile],
    groups: list[list[int]], progress: Progress,
) -> None:  # fmt: skip
    """Read the slices group by group, tile by tile, into `run`."""
    for done, group in enumerate(groups, 1):
        parts: dict[int, list[Pairs]] = {z: [] for z in group}
        for tile in tiles:
            seg, gt = _read(segmentation, group, tile), _read(groundtruth, group, tile)
            for i, z in enumerate(group):
                parts[z].append(run.add_tile(z, tile, seg[i], gt[i]))
        for z in group:
            run.finish_slice(z, parts[z])
        progress(done, len(groups), f"slices {group[0]}-{group[-1]}")


@dataclass(frozen=True)
class Inputs:
    """The two layers of an evaluation, checked: same shape, kinds that fit the mode."""

    segmentation: Layer
    groundtruth: Layer
    threshold: float | None  # semantic mode on a prediction layer only


def check_evaluation(
    ws: Workspace,
    dataset: str,
    segmentation: str,
    groundtruth: str,
    *,
    groundtruth_dataset: str = "",
    mode: str = INSTANCE,
    threshold: float = 0.5,
    slices: str = "",
    box: Sequence[int] | None = None,
) -> Inputs:
    """The layers to compare, or BadInput saying why they cannot be compared."""
    from unem.volumes.datasets import get_dataset
    from unem.volumes.store import LABEL_KINDS

    if mode not in MODES:
        raise BadInput(f"The mode is one of {', '.join(MODES)}, not {mode!r}.")
    try:
        seg = get_dataset(ws, dataset).layer(segmentation)
        gt = get_dataset(ws, groundtruth_dataset or dataset).layer(groundtruth)
    except NotFound as error:
        raise BadInput(error.message) from error
    if gt.kind not in LABEL_KINDS:
        raise BadInput(f"The ground truth must be a label layer, not {gt.name!r} ({gt.kind}).")
    wanted = LABEL_KINDS if mode == INSTANCE else {*LABEL_KINDS, "prediction"}
    if seg.kind not in wanted:
        hint = " (compare a prediction in semantic mode)" if seg.kind == "prediction" else ""
        raise BadInput(f"Layer {seg.name!r} is a {seg.kind} layer: {mode} mode compares "
                       f"{' or '.join(sorted(wanted))} layers{hint}.")  # fmt: skip
    if seg.shape != gt.shape:
        raise BadInput(f"{dataset}/{seg.name} is {seg.shape} but the ground truth is {gt.shape}.")
    uses_threshold = mode == SEMANTIC and seg.kind == "prediction"
    if uses_threshold and not 0 < threshold < 1:
        raise BadInput("The threshold is a probability strictly between 0 and 1.")
    region_of(seg.shape, slices, box)
    return Inputs(seg, gt, threshold if uses_threshold else None)


def _mapping(ws: Workspace, layer: Layer) -> dict[int, int]:
    from unem.proofread.edits import EDIT_LAYER
    from unem.proofread.mapping import non_identity_mapping

    return non_identity_mapping(ws.db, layer.dataset_id) if layer.name == EDIT_LAYER else {}


def evaluate(
    ws: Workspace,
    dataset: str,
    segmentation: str,
    groundtruth: str,
    *,
    groundtruth_dataset: str = "",
    mode: str = INSTANCE,
    threshold: float = 0.5,
    slices: str = "",
    box: Sequence[int] | None = None,
    offenders: int = OFFENDERS,
    progress: Progress = no_progress,
) -> Evaluation:
    """Score layer `segmentation` of `dataset` against layer `groundtruth` (of
    `groundtruth_dataset`, default the same dataset); see `evaluate_arrays`. The proofread
    `segmentation` layer is scored with its fragment → segment mapping applied."""
    from unem.volumes.store import open_level

    inputs = check_evaluation(ws, dataset, segmentation, groundtruth,
                              groundtruth_dataset=groundtruth_dataset, mode=mode,
                              threshold=threshold, slices=slices, box=box)  # fmt: skip
    return evaluate_arrays(
        open_level(inputs.segmentation.path),
        open_level(inputs.groundtruth.path),
        mode=mode,
        threshold=inputs.threshold,
        slices=slices,
        box=box,
        segmentation_mapping=_mapping(ws, inputs.segmentation),
        groundtruth_mapping=_mapping(ws, inputs.groundtruth),
        offenders=offenders,
        progress=progress,
    )
