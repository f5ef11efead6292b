"""Scores of a segmentation against ground truth, and statistics of labelled objects.

Every function takes the `segmentation` first and the `groundtruth` second (scikit-image's
metrics take the truth first). Label volumes may have any integer dtype (bool too), uint64
ids included; they are never modified.

Conventions (Arganda-Carreras et al. 2015, the SNEMI3D definitions the UNI-EM paper uses),
with n_ij the voxels of ground-truth object i in segment j, t_i = Σ_j n_ij, s_j = Σ_i n_ij:

- **Rand** (`rand_scores`), restricted to ground-truth foreground (groundtruth != 0):
  ``rand_split = Σn_ij² / Σt_i²`` (1 when nothing is falsely split),
  ``rand_merge = Σn_ij² / Σs_j²`` (1 when nothing is falsely merged),
  ``rand_f = Σn_ij² / (α Σs_j² + (1 − α) Σt_i²)`` (the F-score at α = 0.5) and
  ``adapted_rand_error = 1 − rand_f`` (SNEMI3D's ARAND). Pairs are counted as n² (self-pairs
  included), as in SNEMI3D and CREMI. Segmentation 0 inside ground-truth foreground is
  "unlabelled": every such voxel is a segment of its own (a singleton), so it counts as a
  split and never as a merge. This is the SNEMI3D script's intent; the script and the CREMI
  and pytorch_connectomics ports add ``Σc / N`` instead of ``Σc`` (c = those voxels, N = all
  voxels; cremi_python issue 3), which differs from this by under 0.1 % on real volumes.
- **Variation of information** (`variation_of_information`), in bits:
  ``split = H(S|T)`` (over-segmentation) and ``merge = H(T|S)`` (under-segmentation).
  Voxels whose ground truth is in `ignore_groundtruth` (default 0) or whose segment is in
  `ignore_segmentation` (default none, as in CREMI) are left out before normalising.
  gala's ``split_vi`` ignores 0 in both by default and returns ``[merge, split]``.

scikit-image differs: ``adapted_rand_error(image_true, image_test)`` counts pairs as
n(n − 1), treats segmentation 0 as one ordinary segment, and returns ``(error, precision,
recall)`` with its "precision" = Σn²/Σt² = our `rand_split` and its "recall" = our
`rand_merge`: swapped relative to SNEMI3D, where precision = `rand_merge` and recall =
`rand_split` (scikit-image issue 6485); its `alpha` weights Σt² where ours weights Σs².
``variation_of_information(image0, image1)`` ignores nothing by default and returns
``[H(image1|image0), H(image0|image1)]``, which is [split, merge] when image0 is the truth.

Every result is a frozen dataclass with `to_json()`; scores that are undefined (no
ground-truth foreground) are NaN, and null in JSON.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from unem.errors import BadInput

SMALL_SPAN = 1 << 20  # a histogram of this many bins is always cheap, whatever the volume
PARTNERS_SHOWN = 5  # overlaps listed for each worst offender
SLAB_PLANES = 16  # planes of cubes per step of the surface-area pass (bounds its memory)
CUBE_CORNERS = tuple(itertools.product((0, 1), repeat=3))  # (dz, dy, dx); bit c = corner c


def _jsonable(value: Any) -> Any:
    """A value for JSON: NaN and infinities become null, tuples lists, results dicts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, _Result):
        return value.to_json()
    return value


class _Result:
    """A frozen dataclass of results that converts itself to JSON, field by field."""

    def to_json(self) -> dict[str, Any]:
        return {field.name: _jsonable(getattr(self, field.name)) for field in fields(self)}  # type: ignore[arg-type]


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RandScores(_Result):
    """SNEMI3D Rand scores (1 is perfect) and the adapted Rand error (0 is perfect)."""

    rand_split: float  # Σn²/Σt²: SNEMI3D "recall"; scikit-image's "precision"
    rand_merge: float  # Σn²/Σs²: SNEMI3D "precision"; scikit-image's "recall"
    rand_f: float
    adapted_rand_error: float


@dataclass(frozen=True)
class VIScores(_Result):
    """Variation of information in bits: split = H(S|T), merge = H(T|S), total = their sum.

    In JSON: `vi_split`, `vi_merge`, `vi_total`.
    """

    split: float
    merge: float
    total: float

    def to_json(self) -> dict[str, Any]:
        return {f"vi_{name}": value for name, value in super().to_json().items()}


@dataclass(frozen=True)
class MaskScores(_Result):
    """Overlap of a predicted semantic mask with the true one (voxel counts and ratios)."""

    jaccard: float
    dice: float
    conformity: float
    precision: float
    recall: float
    f1: float
    true_positive: int
    false_positive: int
    false_negative: int


@dataclass(frozen=True)
class ObjectStats(_Result):
    """One labelled object. Physical quantities are in `voxel_size` units (nm in UNEM).

    `centroid` is (z, y, x) with voxel centres at index × voxel_size; `bbox` is
    (z0, y0, x0, z1, y1, x1) in voxels, stops exclusive (scikit-image's `regionprops` order).
    """

    id: int
    voxels: int
    volume: float
    surface_area: float | None
    centroid: tuple[float, float, float]
    bbox: tuple[int, int, int, int, int, int]
    mean_intensity: float | None


@dataclass(frozen=True)
class Offender(_Result):
    """A ground-truth object split into several segments, or a segment merging objects."""

    id: int
    voxels: int  # of the object (or segment) in its own volume
    bits: float  # its share of vi_split (a split object) or vi_merge (a merging segment)
    partners: int  # segments it is split into, or ground-truth objects the segment covers
    location: tuple[int, ...]  # a voxel inside it, (z, y, x): its voxel nearest its centroid
    overlaps: tuple[tuple[int, int], ...]  # the largest partners as (id, voxels shared)


@dataclass(frozen=True)
class WorstOffenders(_Result):
    """The ground-truth objects most split and the segments most merged, worst first."""

    most_split: tuple[Offender, ...]
    most_merged: tuple[Offender, ...]


@dataclass(frozen=True)
class SliceScores(_Result):
    """Rand and VI scores of each z slice on its own (NaN where a slice has no foreground)."""

    z: tuple[int, ...]
    rand_split: tuple[float, ...]
    rand_merge: tuple[float, ...]
    rand_f: tuple[float, ...]
    adapted_rand_error: tuple[float, ...]
    vi_split: tuple[float, ...]
    vi_merge: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class Contingency:
    """The overlapping (ground-truth object, segment) pairs and their voxel counts.

    Pair k is object ``groundtruth_ids[groundtruth_index[k]]`` and segment
    ``segment_ids[segment_index[k]]``, overlapping in ``counts[k]`` voxels; ids ascend and
    pairs are sorted by (object, segment). Only pairs that occur are stored.
    """

    groundtruth_ids: np.ndarray
    segment_ids: np.ndarray
    groundtruth_index: np.ndarray
    segment_index: np.ndarray
    counts: np.ndarray

    @property
    def voxels(self) -> int:
        return int(self.counts.sum())

    def groundtruth_sizes(self) -> np.ndarray:
        """Voxels of each ground-truth object counted (float64, by `groundtruth_ids`)."""
        return _sums(self.groundtruth_index, self.counts, self.groundtruth_ids.size)

    def segment_sizes(self) -> np.ndarray:
        """Voxels of each segment counted (float64, by `segment_ids`)."""
        return _sums(self.segment_index, self.counts, self.segment_ids.size)

    def to_json(self) -> dict[str, Any]:
        objects = self.groundtruth_ids[self.groundtruth_index].tolist()
        segments = self.segment_ids[self.segment_index].tolist()
        pairs = zip(objects, segments, self.counts.tolist(), strict=True)
        return {"pairs": [list(pair) for pair in pairs], "voxels": self.voxels}


def _sums(index: np.ndarray, counts: np.ndarray, size: int) -> np.ndarray:
    sums: np.ndarray = np.bincount(index, weights=counts, minlength=size).astype(np.float64)
    return sums


# --- the contingency table -----------------------------------------------------------------


def _labels(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise BadInput(f"The {name} must hold integer labels, not {array.dtype}.")
    return array


def _pair(segmentation: np.ndarray, groundtruth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seg = _labels(segmentation, "segmentation")
    gt = _labels(groundtruth, "ground truth")
    if seg.shape != gt.shape:
        raise BadInput(f"The segmentation is {seg.shape} but the ground truth is {gt.shape}.")
    return seg, gt


def _runs(flat: np.ndarray, *others: np.ndarray, row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding of 1-D arrays read together: where runs start, and their lengths.

    A run ends wherever any of the arrays changes, and every `row` elements if `row` > 0.
    Label volumes are mostly long runs along x, so counting runs instead of voxels makes
    every later step several times cheaper.
    """
    if flat.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    change = flat[1:] != flat[:-1]
    for other in others:
        change |= other[1:] != other[:-1]
    if row:
        change[row - 1 :: row] = True
    starts = np.flatnonzero(change)
    starts += 1
    starts = np.concatenate((np.zeros(1, np.intp), starts))
    lengths = np.diff(starts, append=flat.size)
    return starts, lengths


def _dense_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct ids of a 1-D label array, and each element's index into them.

    Ids spanning a small range go through a histogram (linear time); others, such as
    scattered uint64 ids, through `np.unique` (a sort).
    """
    if labels.size == 0:
        return labels[:0].copy(), np.zeros(0, np.intp)
    low = int(labels.min())
    span = int(labels.max()) - low + 1
    if span > max(labels.size, SMALL_SPAN):
        ids, inverse = np.unique(labels, return_inverse=True)
        return ids, inverse.reshape(-1).astype(np.intp, copy=False)
    signed = np.issubdtype(labels.dtype, np.signedinteger)
    if signed:
        shifted = (labels.astype(np.int64) - low).astype(np.intp, copy=False)
    else:  # subtracting the minimum cannot wrap
        shifted = (labels - labels.dtype.type(low)).astype(np.intp)
    present = np.flatnonzero(np.bincount(shifted, minlength=span))
    lookup = np.zeros(span, np.intp)
    lookup[present] = np.arange(present.size)
    if signed:
        ids = (present.astype(np.int64) + low).astype(labels.dtype)
    else:
        ids = (present.astype(np.uint64) + np.uint64(low)).astype(labels.dtype)
    return ids, lookup[shifted]


def _table(seg: np.ndarray, gt: np.ndarray, lengths: np.ndarray) -> Contingency:
    """The contingency table of runs: their segment, their object and their voxel count."""
    gt_ids, gt_index = _dense_ids(gt)
    seg_ids, seg_index = _dense_ids(seg)
    n_seg = max(seg_ids.size, 1)
    keys = gt_index * n_seg + seg_index
    cells = gt_ids.size * n_seg
    # A histogram of every (object, segment) cell only while it is small next to the runs,
    # so memory stays linear in the input; otherwise sort the keys of the pairs that occur.
    if cells <= max(2 * keys.size, SMALL_SPAN):
        histogram = np.bincount(keys, weights=lengths, minlength=cells)
        pairs = np.flatnonzero(histogram)
        counts = histogram[pairs]
    else:
        pairs, inverse = np.unique(keys, return_inverse=True)
        counts = np.bincount(inverse.reshape(-1), weights=lengths, minlength=pairs.size)
    counts = np.rint(counts).astype(np.int64)  # float sums of ints below 2**53: exact
    return Contingency(gt_ids, seg_ids, pairs // n_seg, pairs % n_seg, counts)


def _kept(labels: np.ndarray, ignore: Sequence[int]) -> np.ndarray | None:
    """Where `labels` is none of `ignore` (None when nothing is ignored)."""
    info = np.iinfo(labels.dtype)
    values = [int(value) for value in ignore if info.min <= int(value) <= info.max]
    if not values:
        return None
    kept: np.ndarray = labels != values[0]
    for value in values[1:]:
        kept &= labels != value
    return kept


def contingency_table(
    segmentation: np.ndarray,
    groundtruth: np.ndarray,
    *,
    ignore_groundtruth: Sequence[int] = (0,),
    ignore_segmentation: Sequence[int] = (),
) -> Contingency:
    """Count the voxels of each overlapping (ground-truth object, segment) pair.

    Parameters
    ----------
    segmentation, groundtruth : ndarray of int, same shape
        Label volumes of any integer dtype (uint64 ids included).
    ignore_groundtruth, ignore_segmentation : sequence of int
        Voxels with one of these labels are not counted (default: ground-truth 0).

    Returns
    -------
    Contingency
        A sparse table; no dense n_objects × n_segments matrix is built. Cost is linear in
        the voxels plus a sort of the runs when ids are scattered or very many.
    """
    seg, gt = _pair(segmentation, groundtruth)
    seg, gt = seg.reshape(-1), gt.reshape(-1)
    starts, lengths = _runs(seg, gt)
    seg, gt = seg[starts], gt[starts]
    kept_gt, kept_seg = _kept(gt, ignore_groundtruth), _kept(seg, ignore_segmentation)
    kept = kept_gt if kept_seg is None else kept_seg if kept_gt is None else kept_gt & kept_seg
    if kept is not None:
        seg, gt, lengths = seg[kept], gt[kept], lengths[kept]
    return _table(seg, gt, lengths)


# --- Rand and variation of information -----------------------------------------------------


def _rand(table: Contingency, alpha: float) -> RandScores:
    counts = table.counts.astype(np.float64)
    singles = table.segment_ids[table.segment_index] == 0
    single_voxels = float(counts[singles].sum())  # each a singleton: n² = n = 1 per voxel
    paired = counts[~singles]
    sizes = _sums(table.segment_index[~singles], paired, table.segment_ids.size)
    truth = table.groundtruth_sizes()
    sum_n2 = float(paired @ paired) + single_voxels
    sum_s2 = float(sizes @ sizes) + single_voxels
    sum_t2 = float(truth @ truth)
    if sum_t2 == 0:
        nan = math.nan
        return RandScores(nan, nan, nan, nan)
    rand_f = sum_n2 / (alpha * sum_s2 + (1 - alpha) * sum_t2)
    return RandScores(sum_n2 / sum_t2, sum_n2 / sum_s2, rand_f, 1.0 - rand_f)


def rand_scores(
    segmentation: np.ndarray, groundtruth: np.ndarray, alpha: float = 0.5
) -> RandScores:
    """SNEMI3D Rand split/merge scores, their weighted F-score and the adapted Rand error.

    Restricted to ground-truth foreground (groundtruth != 0); segmentation 0 inside it counts
    as singletons (see the module docstring). `alpha` weighs the merge side:
    ``rand_f = Σn² / (α Σs² + (1 − α) Σt²)``, so α = 0 gives `rand_split` and α = 1 gives
    `rand_merge`. All NaN when the ground truth has no foreground.
    """
    if not 0.0 <= alpha <= 1.0:
        raise BadInput(f"alpha must be between 0 and 1, not {alpha}.")
    return _rand(contingency_table(segmentation, groundtruth), alpha)


def _entropies(table: Contingency) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's share of H(S|T) and of H(T|S), in bits."""
    counts = table.counts.astype(np.float64)
    total = counts.sum()
    truth = table.groundtruth_sizes()[table.groundtruth_index]
    segments = table.segment_sizes()[table.segment_index]
    weight = counts / total
    split: np.ndarray = -weight * np.log2(counts / truth)
    merge: np.ndarray = -weight * np.log2(counts / segments)
    return split, merge


def _vi(table: Contingency) -> VIScores:
    if table.counts.size == 0:
        return VIScores(math.nan, math.nan, math.nan)
    split, merge = _entropies(table)
    split_bits, merge_bits = float(split.sum()) + 0.0, float(merge.sum()) + 0.0
    return VIScores(split_bits, merge_bits, split_bits + merge_bits)


def variation_of_information(
    segmentation: np.ndarray,
    groundtruth: np.ndarray,
    ignore_groundtruth: Sequence[int] = (0,),
    ignore_segmentation: Sequence[int] = (),
) -> VIScores:
    """Split (H(S|T), over-segmentation) and merge (H(T|S)) parts of the VI, in bits.

    Voxels labelled with an ignored id in either volume are left out; by default only
    ground-truth 0. NaN when no voxel is left.
    """
    table = contingency_table(
        segmentation,
        groundtruth,
        ignore_groundtruth=ignore_groundtruth,
        ignore_segmentation=ignore_segmentation,
    )
    return _vi(table)


def per_slice_scores(segmentation: np.ndarray, groundtruth: np.ndarray) -> SliceScores:
    """Rand (α = 0.5) and VI of each z slice (axis 0) scored on its own."""
    seg, gt = _pair(segmentation, groundtruth)
    if seg.ndim != 3:
        raise BadInput(f"Per-slice scores need (z, y, x) volumes, not {seg.ndim}-D arrays.")
    rand: list[RandScores] = []
    vi: list[VIScores] = []
    for z in range(seg.shape[0]):
        table = contingency_table(seg[z], gt[z])
        rand.append(_rand(table, 0.5))
        vi.append(_vi(table))
    return SliceScores(
        z=tuple(range(seg.shape[0])),
        rand_split=tuple(scores.rand_split for scores in rand),
        rand_merge=tuple(scores.rand_merge for scores in rand),
        rand_f=tuple(scores.rand_f for scores in rand),
        adapted_rand_error=tuple(scores.adapted_rand_error for scores in rand),
        vi_split=tuple(scores.split for scores in vi),
        vi_merge=tuple(scores.merge for scores in vi),
    )


# --- worst offenders -----------------------------------------------------------------------


def _inside(labels: np.ndarray, label_id: int) -> tuple[int, tuple[int, ...]]:
    """How many voxels have `label_id`, and which of them is nearest their centroid."""
    coords = np.unravel_index(np.flatnonzero(labels.reshape(-1) == label_id), labels.shape)
    distance = np.zeros(coords[0].size)
    for axis in coords:
        distance += (axis - axis.mean()) ** 2
    nearest = int(np.argmin(distance))
    return coords[0].size, tuple(int(axis[nearest]) for axis in coords)


@dataclass(frozen=True, eq=False)
class _Side:
    """One side of a contingency table: its volume, ids, pair indices and per-id bits."""

    labels: np.ndarray
    ids: np.ndarray
    index: np.ndarray
    bits: np.ndarray


def _offenders(side: _Side, other: _Side, counts: np.ndarray, n: int) -> tuple[Offender, ...]:
    """The `n` ids of `side` with the most bits (ties: most partners), worst first."""
    partners = np.bincount(side.index, minlength=side.ids.size)
    ranked = np.lexsort((-partners, -side.bits))[:n]
    out = []
    for k in ranked[side.bits[ranked] > 0]:
        pairs = np.flatnonzero(side.index == k)
        pairs = pairs[np.argsort(-counts[pairs], kind="stable")][:PARTNERS_SHOWN]
        overlaps = tuple((int(other.ids[other.index[p]]), int(counts[p])) for p in pairs)
        label_id = int(side.ids[k])
        voxels, location = _inside(side.labels, label_id)
        bits = float(side.bits[k])
        out.append(Offender(label_id, voxels, bits, int(partners[k]), location, overlaps))
    return tuple(out)


def worst_offenders(
    segmentation: np.ndarray, groundtruth: np.ndarray, n: int = 10
) -> WorstOffenders:
    """The ground-truth objects most split and the segments most merged.

    Ranked by their share of the VI (bits of `vi_split` for an object, of `vi_merge` for a
    segment, ground-truth 0 ignored), then by the number of partners; objects with no error
    are not listed. Segment 0 (unlabelled) is counted as a partner but never listed as a
    merging segment. Each offender carries a voxel inside it, to open the viewer there.
    """
    seg, gt = _pair(segmentation, groundtruth)
    table = contingency_table(seg, gt)
    if table.counts.size == 0:
        return WorstOffenders((), ())
    split, merge = _entropies(table)
    n_gt, n_seg = table.groundtruth_ids.size, table.segment_ids.size
    split_bits = np.bincount(table.groundtruth_index, weights=split, minlength=n_gt)
    merge_bits = np.bincount(table.segment_index, weights=merge, minlength=n_seg)
    merge_bits[table.segment_ids == 0] = 0.0  # unlabelled is not a segment to proofread
    objects = _Side(gt, table.groundtruth_ids, table.groundtruth_index, split_bits)
    segments = _Side(seg, table.segment_ids, table.segment_index, merge_bits)
    return WorstOffenders(
        most_split=_offenders(objects, segments, table.counts, n),
        most_merged=_offenders(segments, objects, table.counts, n),
    )


# --- semantic masks ------------------------------------------------------------------------


def _ratio(numerator: int, denominator: int, both_empty: bool) -> float:
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def mask_scores(prediction_mask: np.ndarray, truth_mask: np.ndarray) -> MaskScores:
    """Jaccard, Dice, conformity, precision, recall and F1 of a predicted mask (nonzero = in).

    conformity = 1 − (FP + FN) / TP (Chang et al. 2009), in (−∞, 1]. A ratio whose
    denominator is zero is 1 when both masks are empty (nothing to find, nothing found) and
    0 otherwise (e.g. precision of an empty prediction); conformity is then 1 or −∞.
    F1 equals Dice for masks; both are given under their usual names.
    """
    prediction, truth = np.asarray(prediction_mask), np.asarray(truth_mask)
    if prediction.shape != truth.shape:
        raise BadInput(f"The prediction is {prediction.shape} but the truth is {truth.shape}.")
    prediction, truth = prediction.astype(bool, copy=False), truth.astype(bool, copy=False)
    tp = int(np.count_nonzero(prediction & truth))
    fp = int(np.count_nonzero(prediction)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    empty = tp + fp + fn == 0
    errors = fp + fn
    conformity = 1.0 if empty else (1.0 - errors / tp if tp else -math.inf)
    dice = _ratio(2 * tp, 2 * tp + errors, empty)
    return MaskScores(
        jaccard=_ratio(tp, tp + errors, empty),
        dice=dice,
        conformity=conformity,
        precision=_ratio(tp, tp + fp, empty),
        recall=_ratio(tp, tp + fn, empty),
        f1=dice,
        true_positive=tp,
        false_positive=fp,
        false_negative=fn,
    )


# --- per-object statistics -----------------------------------------------------------------


def _numbering(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object ids (0 excluded) and each value's object number, 1..n (0 for background)."""
    ids, index = _dense_ids(values)
    number = np.arange(1, ids.size + 1, dtype=np.intp)
    zero = np.flatnonzero(ids == 0)
    if zero.size:
        number[zero[0]] = 0
        number[zero[0] + 1 :] -= 1
        ids = np.delete(ids, zero[0])
    return ids, number[index]


@functools.lru_cache(maxsize=8)
def _cube_areas(voxel_size: tuple[float, float, float]) -> np.ndarray:
    """Marching-cubes area (level 0.5) inside one cube of 2×2×2 voxels, per corner pattern.

    Bit c of a pattern is corner `CUBE_CORNERS[c]`. On a binary mask marching cubes puts
    each cube's triangles from its 8 corners alone (vertices at edge midpoints), so the area
    of a whole mesh is the sum of these over its cubes.
    """
    from skimage.measure import marching_cubes, mesh_surface_area

    areas = np.zeros(256)
    for pattern in range(1, 255):
        cube = ((pattern >> np.arange(8)) & 1).reshape(2, 2, 2).astype(np.float32)
        verts, faces, _, _ = marching_cubes(cube, 0.5, spacing=voxel_size)  # type: ignore[no-untyped-call]
        areas[pattern] = mesh_surface_area(verts, faces)  # type: ignore[no-untyped-call]
    areas.flags.writeable = False
    return areas


def _cube_area_sums(corners: np.ndarray, areas: np.ndarray, n: int) -> np.ndarray:
    """Area per object number 0..n of the cubes whose corner labels are `corners` (8, m)."""
    total = np.zeros(n + 1)
    for c, label in enumerate(corners):
        first = label != 0  # each object of a cube is counted at its first corner only
        for earlier in corners[:c]:
            first &= earlier != label
        label, here = label[first], corners[:, first]
        pattern = np.zeros(label.size, np.intp)
        for bit, corner in enumerate(here):
            pattern += (corner == label) * (1 << bit)
        total += np.bincount(label, weights=areas[pattern], minlength=n + 1)
    return total


def _surface_areas(
    numbers: np.ndarray, n: int, voxel_size: tuple[float, float, float]
) -> np.ndarray:
    """Marching-cubes mesh area of objects 1..n of a (z, y, x) volume of object numbers.

    Equals scikit-image's `marching_cubes` (level 0.5, spacing = voxel_size) plus
    `mesh_surface_area` on each object's padded mask, in one linear pass over the volume
    whatever the objects' bounding boxes.
    """
    areas = _cube_areas(voxel_size)
    padded = np.pad(numbers, 1)
    planes, rows, cols = (size - 1 for size in padded.shape)
    total = np.zeros(n + 1)
    for z in range(0, planes, SLAB_PLANES):
        depth = min(SLAB_PLANES, planes - z)
        views = [
            padded[z + i : z + i + depth, j : j + rows, k : k + cols] for i, j, k in CUBE_CORNERS
        ]
        mixed = views[0] != views[1]
        for view in views[2:]:
            mixed |= views[0] != view
        total += _cube_area_sums(np.stack([view[mixed] for view in views]), areas, n)
    result: np.ndarray = total[1:]
    return result


def _run_centroids(
    starts: np.ndarray, lengths: np.ndarray, number: np.ndarray, shape: tuple[int, ...], n: int
) -> np.ndarray:
    """Voxel-index sums of each object along z, y, x, from runs that each lie in one row."""
    line, x = np.divmod(starts, shape[2])
    z, y = np.divmod(line, shape[1])
    weights = (lengths * z, lengths * y, lengths * x + lengths * (lengths - 1) / 2)
    sums = [np.bincount(number, weights=w, minlength=n + 1)[1:] for w in weights]
    return np.stack(sums, axis=1)


def object_statistics(
    labels: np.ndarray,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    image: np.ndarray | None = None,
    *,
    surface_area: bool = True,
) -> list[ObjectStats]:
    """Voxel count, volume, surface area, centroid, bounding box and mean intensity per object.

    Parameters
    ----------
    labels : (z, y, x) ndarray of int
        Object ids; 0 is background.
    voxel_size : (3,) floats
        Size of a voxel along z, y, x (nm in UNEM); volume, area and centroid use it.
    image : (z, y, x) ndarray, optional
        Intensities for `mean_intensity` (None when not given).
    surface_area : bool
        Measure areas (None otherwise): exactly the area of the marching-cubes mesh of each
        object's padded mask (`_surface_areas`). Against exact shapes it reads high on curved
        surfaces (a voxelised ball: +8–9 % on cubic voxels, +12 % on 2:1:1 voxels) and low
        where it chamfers edges (an axis-aligned cube of 20 voxels: −3 %).

    Returns
    -------
    list of ObjectStats, by ascending id.
    """
    labels = _labels(labels, "labels")
    if labels.ndim != 3 or len(voxel_size) != 3:
        raise BadInput("Object statistics need a (z, y, x) volume and three voxel sizes.")
    if image is not None and np.shape(image) != labels.shape:
        raise BadInput(f"The image is {np.shape(image)} but the labels are {labels.shape}.")
    spacing = (float(voxel_size[0]), float(voxel_size[1]), float(voxel_size[2]))
    flat = labels.reshape(-1)
    starts, lengths = _runs(flat, row=labels.shape[2])
    ids, number = _numbering(flat[starts])
    n = ids.size
    counts = np.rint(np.bincount(number, weights=lengths, minlength=n + 1)[1:]).astype(np.int64)
    denominator = np.maximum(counts, 1)[:, None]
    centroids = _run_centroids(starts, lengths, number, labels.shape, n) / denominator
    centroids *= np.asarray(spacing)
    means = None
    if image is not None and n:
        sums = np.add.reduceat(np.asarray(image).reshape(-1), starts, dtype=np.float64)
        means = np.bincount(number, weights=sums, minlength=n + 1)[1:] / denominator[:, 0]
    small = np.int32 if n < 2**31 - 1 else np.int64  # halves the memory of what follows
    numbers = np.repeat(number.astype(small), lengths).reshape(labels.shape)
    boxes = ndi.find_objects(numbers, max_label=n)
    areas = _surface_areas(numbers, n, spacing) if surface_area else None
    voxel_volume = spacing[0] * spacing[1] * spacing[2]
    return [
        ObjectStats(
            id=int(ids[k]),
            voxels=int(counts[k]),
            volume=float(counts[k]) * voxel_volume,
            surface_area=None if areas is None else float(areas[k]),
            centroid=(float(centroids[k, 0]), float(centroids[k, 1]), float(centroids[k, 2])),
            bbox=_bbox(box),
            mean_intensity=None if means is None else float(means[k]),
        )
        for k, box in enumerate(boxes)
    ]


def _bbox(box: tuple[slice, ...]) -> tuple[int, int, int, int, int, int]:
    z, y, x = box
    return (z.start, y.start, x.start, z.stop, y.stop, x.stop)
