"""Label filters: connected components (cc3d), watershed (seeds from distance-transform
peaks or from a probability map), size filter, sequential relabel (fastremap), and linking
2D labels into 3D objects by overlap.

Labels are uint32 (uint64 when the input is), 0 the background. 2D labellings number
objects 1..n on each slice; a pipeline makes them unique across slices (see the runner).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from unem.errors import BadInput
from unem.filters.catalog import DimsOptions, Filter, FilterOptions
from unem.filters.slabs import Connectivity, components, stitched_components

if TYPE_CHECKING:
    from unem.filters.runner import RunContext

READ_SLICES = 8
MAX_UINT32 = 2**32 - 1
CONNECTIVITY_HELP = (
    "Which neighbours touch: faces (4 in 2D, 6 in 3D), edges (8, 18), corners (8, 26)."
)

# --- connected components ----------------------------------------------------------------


class LabelOptions(DimsOptions):
    connectivity: Connectivity = Field("faces", description=CONNECTIVITY_HELP)


def label(array: np.ndarray, options: LabelOptions) -> np.ndarray:
    return components(array, options.connectivity)


def label_volume(volume: Any, options: LabelOptions, run: RunContext) -> Iterator[np.ndarray]:
    return stitched_components(volume, options.connectivity, 0, run)


# --- watershed ---------------------------------------------------------------------------


class WatershedOptions(DimsOptions):
    seeds: Literal["distance", "probability"] = Field(
        "distance",
        description="distance: peaks of the distance transform of the objects (one per "
        "object, two where it narrows); probability: regions where a prediction is surest. "
        "A mask always seeds from distance peaks.",
    )
    seed_depth: float = Field(
        2.0,
        gt=0,
        le=100,
        description="distance seeds: a second seed only where an object "
        "narrows by at least this many voxels.",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Predictions: the probability that separates objects."
    )
    seed_threshold: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="probability seeds: where the boundary probability is "
        "below this (the object probability above 1 − this).",
    )
    boundary: bool = Field(
        True, description="Predictions: they mark boundaries (objects where they are low)."
    )
    sampling_z: float = Field(
        1.0, gt=0, le=100, description="3d: section thickness over the pixel size."
    )


def watershed(array: np.ndarray, options: WatershedOptions) -> np.ndarray:
    """Seeded watershed of a mask (flooding the inverted distance transform) or of a
    prediction (flooding the boundary probability)."""
    anisotropic = array.ndim == 3 and options.sampling_z != 1
    sampling = (options.sampling_z, 1.0, 1.0) if anisotropic else None  # None: faster
    if array.dtype == bool:
        return mask_watershed(array, options.seed_depth, sampling)
    if options.seeds == "distance":
        from unem.filters.postprocess import label_watershed

        return label_watershed(
            array, options.threshold, options.boundary, options.seed_depth, sampling
        )
    return probability_watershed(array, options)


def mask_watershed(
    mask: np.ndarray, seed_depth: float, sampling: tuple[float, ...] | None
) -> np.ndarray:
    from scipy import ndimage
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed as skimage_watershed

    distance = ndimage.distance_transform_edt(mask, sampling=sampling)
    peaks = h_maxima(distance, seed_depth).astype(bool) & mask  # type: ignore[no-untyped-call]
    seeds = components(peaks, "corners")
    labels = skimage_watershed(-distance, seeds, mask=mask)  # type: ignore[no-untyped-call]
    return np.asarray(labels, np.uint32)


def probability_watershed(prob: np.ndarray, options: WatershedOptions) -> np.ndarray:
    from skimage.segmentation import watershed as skimage_watershed

    from unem.filters.postprocess import interior

    elevation = prob if options.boundary else 1 - prob
    seeds = components(elevation < options.seed_threshold, "faces")
    mask = None if options.boundary else interior(prob, options.threshold, False)
    labels = skimage_watershed(elevation, seeds, mask=mask)  # type: ignore[no-untyped-call]
    return np.asarray(labels, np.uint32)


# --- sizes and ids -----------------------------------------------------------------------


class SizeOptions(DimsOptions):
    min_size: int = Field(0, ge=0, description="Objects with fewer voxels become background.")
    max_size: int = Field(0, ge=0, description="Objects with more voxels too; 0: no limit.")


def size_filter(array: np.ndarray, options: SizeOptions) -> np.ndarray:
    import fastremap

    ids, counts = fastremap.unique(array, return_counts=True)
    return drop_ids(array, dropped(ids, counts, options))


def dropped(ids: np.ndarray, counts: np.ndarray, options: SizeOptions) -> np.ndarray:
    small = counts < options.min_size
    large = counts > options.max_size if options.max_size else np.zeros(len(ids), bool)
    gone: np.ndarray = ids[(small | large) & (ids != 0)]
    return gone


def drop_ids(array: np.ndarray, ids: np.ndarray) -> np.ndarray:
    import fastremap

    if not len(ids):
        return array.copy()
    kept: np.ndarray = fastremap.mask(array, ids.tolist())
    return kept


def size_volume(volume: Any, options: SizeOptions, run: RunContext) -> Iterator[np.ndarray]:
    """3D: object sizes counted over the whole volume, slab by slab, then the slices."""
    import fastremap

    totals: dict[int, int] = {}
    for block in _blocks(volume, run, "counting voxels"):
        ids, counts = fastremap.unique(block, return_counts=True)
        for i, n in zip(ids.tolist(), counts.tolist(), strict=True):
            totals[i] = totals.get(i, 0) + n
    run.next_pass()
    ids = np.array(list(totals), dtype=np.uint64)
    gone = dropped(ids, np.array(list(totals.values()), np.int64), options)
    for block in _blocks(volume):
        yield from drop_ids(block, gone.astype(block.dtype))


class RelabelOptions(FilterOptions):
    pass


def relabel(array: np.ndarray, options: RelabelOptions) -> np.ndarray:
    import fastremap

    renumbered, _ = fastremap.renumber(array, preserve_zero=True)
    return id_dtype(renumbered, int(renumbered.max(initial=0)))


def id_dtype(labels: np.ndarray, largest: int) -> np.ndarray:
    return labels.astype(np.uint32 if largest <= MAX_UINT32 else np.uint64)


def relabel_volume(volume: Any, options: RelabelOptions, run: RunContext) -> Iterator[np.ndarray]:
    """3D: ids in order of first appearance (as fastremap.renumber numbers a volume),
    found slab by slab, then each slab mapped."""
    import fastremap

    order: dict[int, int] = {0: 0}
    for block in _blocks(volume, run, "finding ids"):
        ids, first = np.unique(block, return_index=True)
        for i in ids[np.argsort(first)].tolist():
            order.setdefault(i, len(order))
    run.next_pass()
    for block in _blocks(volume):
        yield from id_dtype(fastremap.remap(block, order), len(order) - 1)


def _blocks(volume: Any, run: RunContext | None = None, message: str = "") -> Iterator[np.ndarray]:
    """The volume in blocks of slices; with `run`, a first pass reported as progress."""
    depth = int(volume.shape[0])
    for z0 in range(0, depth, READ_SLICES):
        yield np.asarray(volume[z0 : z0 + READ_SLICES])
        if run is not None:
            run.advance(min(z0 + READ_SLICES, depth), depth, message)


# --- linking 2D labels into 3D objects ---------------------------------------------------


class LinkOptions(FilterOptions):
    min_overlap: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A 2D object continues the object of the previous slice it overlaps "
        "most, when the overlap covers at least this fraction of the smaller of the two.",
    )


def link_overlap(array: np.ndarray, options: LinkOptions) -> np.ndarray:
    return np.stack(list(link_slices(iter(array), options)))


@dataclass(frozen=True)
class SliceObjects:
    """A slice's labels, their sorted ids, each voxel's index in `ids`, and each id's area."""

    labels: np.ndarray
    ids: np.ndarray
    index: np.ndarray
    areas: np.ndarray


def slice_objects(labels: np.ndarray) -> SliceObjects:
    # A slice holds few ids: a binary search of each voxel in the sorted ids is ~10x
    # quicker than the full argsort behind np.unique(..., return_inverse=True).
    ids = np.unique(labels)
    index = np.searchsorted(ids, labels)
    return SliceObjects(labels, ids, index, np.bincount(index.ravel(), minlength=len(ids)))


def link_slices(planes: Iterable[np.ndarray], options: LinkOptions) -> Iterator[np.ndarray]:
    """Each slice's objects take the id of the object of the previous slice they overlap
    most (enough), or a new id: a branch keeps its parent's id on both arms.

    One sort of each slice's labels; the previous slice's objects are derived from it."""
    previous: SliceObjects | None = None
    next_id = 1
    for plane in planes:
        found = slice_objects(plane)
        parents = best_parents(found, previous, options.min_overlap) if previous is not None else {}
        values = []
        for k, i in enumerate(found.ids.tolist()):
            if i <= 0:
                values.append(0)
            elif k in parents:
                values.append(parents[k])
            else:
                values.append(next_id)
                next_id += 1
        if next_id - 1 > MAX_UINT32:
            raise BadInput("More linked objects than 32-bit ids can number.")
        lookup = np.array(values, dtype=np.uint32)
        linked = lookup[found.index]
        yield linked
        previous = linked_objects(linked, found, lookup)


def linked_objects(linked: np.ndarray, found: SliceObjects, lookup: np.ndarray) -> SliceObjects:
    """The objects of a linked slice, from those of the slice it was linked from (the
    lookup from `found.ids` to the linked ids; several ids may join into one)."""
    ids, merged = np.unique(lookup, return_inverse=True)
    areas = np.bincount(merged, weights=found.areas, minlength=len(ids)).astype(np.int64)
    return SliceObjects(linked, ids, merged[found.index], areas)


def best_parents(plane: SliceObjects, previous: SliceObjects, min_overlap: float) -> dict[int, int]:
    """index of an object of `plane` → the id of the object of `previous` it overlaps
    most, if enough (ties: the smaller id)."""
    both = (plane.labels > 0) & (previous.labels > 0)
    if not both.any():
        return {}
    width = len(previous.ids)
    pairs = plane.index[both].astype(np.int64) * width + previous.index[both]
    pairs, overlap = np.unique(pairs, return_counts=True)
    children, parents = np.divmod(pairs, width)
    smaller = np.minimum(plane.areas[children], previous.areas[parents])
    enough = overlap >= min_overlap * smaller
    best: dict[int, tuple[int, int]] = {}
    for child, parent, n in zip(
        children[enough].tolist(), parents[enough].tolist(), overlap[enough].tolist(), strict=True
    ):
        if child not in best or n > best[child][1]:
            best[child] = (parent, n)
    parent_ids = previous.ids.tolist()
    return {child: parent_ids[parent] for child, (parent, _) in best.items()}


def register_filters(register: Callable[[Filter], None]) -> None:
    both, labels = ("2d", "3d"), frozenset({"labels"})
    for item in (
        Filter("label", "Connected components", "labels",
               "Number the connected objects of a mask (or split each label into its "
               "connected parts) with cc3d; 3d: slab by slab, joined across slabs.",
               LabelOptions, label, frozenset({"mask", "labels"}), "labels", dims=both,
               new_ids=True, stream=label_volume),
        Filter("watershed", "Watershed", "labels",
               "Seeded watershed (scikit-image) of a mask or a prediction; touching objects "
               "split. 3d: whole volume.",
               WatershedOptions, watershed, frozenset({"mask", "prediction"}), "labels",
               dims=both, new_ids=True),
        Filter("size-filter", "Size filter", "labels",
               "Objects outside min_size..max_size voxels become background.",
               SizeOptions, size_filter, labels, dims=both, stream=size_volume),
        Filter("relabel", "Sequential relabel", "labels",
               "Renumber ids 1..n in order of appearance (fastremap), 0 kept.",
               RelabelOptions, relabel, labels, dims=("3d",), stream=relabel_volume),
        Filter("link-overlap", "Link 2D labels into 3D", "labels",
               "Join each slice's objects to those of the previous slice they overlap.",
               LinkOptions, link_overlap, labels, dims=("3d",), sequential=link_slices),
    ):  # fmt: skip
        register(item)
