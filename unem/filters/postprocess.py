"""Post-processing of a prediction: a probability map becomes instance ids to proofread.

Two methods, each on one slice (2D) or one slab of slices (3D) in memory:

- **threshold**: the connected components of the interior (where the prediction is low for a
  boundary map, high for an object map);
- **watershed**: seeds are the h-maxima of the interior's distance transform (one per object,
  two where an object narrows between two parts), flooding the boundary probability.

`segment_prediction` streams a layer through them with bounded memory: slice by slice in
2D (ids unique across slices), or in slabs of slices in 3D, where the ids of objects that
continue across a slab's face are joined (every touching pair for a threshold, pairs that
mostly overlap for a watershed) in a second pass over the labelled slabs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from unem.errors import BadInput
from unem.progress import Progress, no_progress
from unem.volumes.datasets import Layer, get_dataset
from unem.volumes.store import LABEL_KINDS, chunks_for, open_level
from unem.workspace import Workspace

Method = Literal["threshold", "watershed"]
Mode = Literal["2d", "3d"]
METHODS: tuple[Method, ...] = ("threshold", "watershed")
MODES: tuple[Mode, ...] = ("2d", "3d")
SLAB_VOXELS = 32 * 2**20  # a 3D slab holds about this many voxels (float32: 128 MiB)
STITCH_OVERLAP = 0.5  # watershed slabs: join two ids sharing this much of the smaller face
MAX_ID = 2**32 - 1


def probability(array: np.ndarray) -> np.ndarray:
    """A prediction as float32 probabilities in [0, 1]: uint8 / 255, uint16 / 65535,
    floats clipped (they are probabilities already)."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535)
    if array.dtype == bool:
        return array.astype(np.float32)
    clipped: np.ndarray = np.clip(np.nan_to_num(array.astype(np.float32)), 0, 1)
    return clipped


def interior(prob: np.ndarray, threshold: float, boundary: bool) -> np.ndarray:
    """Where objects are: below `threshold` on a boundary map, at or above it otherwise."""
    mask: np.ndarray = prob < threshold if boundary else prob >= threshold
    return mask


def label_threshold(prob: np.ndarray, threshold: float = 0.5, boundary: bool = True) -> np.ndarray:
    """Connected components (faces touching) of the interior, ids 1..n (uint32; 0 outside)."""
    from skimage.measure import label

    inside = interior(prob, threshold, boundary)
    labels: np.ndarray = label(inside, connectivity=1)  # type: ignore[no-untyped-call]
    return labels.astype(np.uint32)


def label_watershed(
    prob: np.ndarray,
    threshold: float = 0.5,
    boundary: bool = True,
    seed_depth: float = 2.0,
    sampling: tuple[float, ...] | None = None,
) -> np.ndarray:
    """A seeded watershed of a probability map (2D or 3D), ids 1..n (uint32).

    Seeds are the h-maxima (h = `seed_depth` voxels) of the distance transform of the
    interior, so an object gets a second seed only where it narrows by at least that much.
    The boundary probability is flooded from them: on a boundary map over the whole array
    (regions meet on the boundaries); on an object map within the interior only.
    `sampling` is the voxel size along each axis (anisotropic stacks), in y/x voxels.
    """
    from scipy import ndimage
    from skimage.measure import label
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    inside = interior(prob, threshold, boundary)
    distance = ndimage.distance_transform_edt(inside, sampling=sampling)
    peaks = h_maxima(distance, seed_depth).astype(bool) & inside  # type: ignore[no-untyped-call]
    seeds = label(peaks, connectivity=prob.ndim)  # type: ignore[no-untyped-call]
    elevation = prob if boundary else 1 - prob
    mask = None if boundary else inside
    labels: np.ndarray = watershed(elevation, seeds, mask=mask)  # type: ignore[no-untyped-call]
    return labels.astype(np.uint32)


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """`labels` without objects of fewer than `min_size` voxels, renumbered 1..n in order."""
    counts = np.bincount(labels.ravel())
    keep = counts >= max(min_size, 1)
    keep[0] = False
    lookup = np.zeros(len(counts), np.uint32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    relabelled: np.ndarray = lookup[labels]
    return relabelled


def check_options(
    ws: Workspace,
    dataset_id: str,
    layer: str,
    method: str,
    threshold: float,
    mode: str,
    min_size: int,
    seed_depth: float,
) -> Layer:
    """The prediction layer to segment, or BadInput saying why the request cannot work."""
    source = get_dataset(ws, dataset_id).layer(layer)
    if source.kind in LABEL_KINDS:
        raise BadInput(f"{layer} holds labels, not a prediction; choose a prediction layer.")
    if method not in METHODS:
        raise BadInput(f"Unknown method {method!r}; choose {' or '.join(METHODS)}.")
    if mode not in MODES:
        raise BadInput(f"Unknown mode {mode!r}; choose {' or '.join(MODES)}.")
    if not 0 < threshold < 1:
        raise BadInput("The threshold is a probability strictly between 0 and 1.")
    if min_size < 0 or seed_depth <= 0:
        raise BadInput("min_size must be at least 0 and seed_depth positive.")
    return source


def segment_prediction(
    ws: Workspace,
    dataset_id: str,
    layer: str,
    method: Method = "watershed",
    threshold: float = 0.5,
    boundary: bool = True,
    min_size: int = 0,
    mode: Mode = "2d",
    seed_depth: float = 2.0,
    progress: Progress = no_progress,
) -> Iterator[np.ndarray]:
    """The slices (uint32 ids, 0 = background) of a segmentation of a prediction layer.

    Parameters
    ----------
    layer
        A prediction (uint8 = probability × 255, uint16, or float in [0, 1]) of one class.
    boundary
        True when the prediction is a boundary (membrane) probability: objects are where
        it is low. False when it is the probability of the objects themselves.
    min_size
        Objects with fewer voxels are dropped (in 2D mode: pixels of one slice).
    mode
        "2d": each slice labelled on its own, ids unique across slices. "3d": objects
        continue across slices (read in slabs, joined across their faces).

    The options are checked at once; the work happens as the slices are consumed.
    """
    source = check_options(ws, dataset_id, layer, method, threshold, mode, min_size, seed_depth)
    array = open_level(source.path, source.levels[0].path)
    if mode == "2d":
        return _slices_2d(array, method, threshold, boundary, min_size, seed_depth, progress)
    voxel = get_dataset(ws, dataset_id).voxel_size
    sampling = (voxel[0] / voxel[1], 1.0, voxel[2] / voxel[1])
    return _slices_3d(
        ws, array, method, threshold, boundary, min_size, seed_depth, sampling, progress
    )


def _label(
    prob: np.ndarray,
    method: str,
    threshold: float,
    boundary: bool,
    seed_depth: float,
    sampling: tuple[float, ...] | None = None,
) -> np.ndarray:
    if method == "threshold":
        return label_threshold(prob, threshold, boundary)
    return label_watershed(prob, threshold, boundary, seed_depth, sampling)


def _slices_2d(
    array: Any,
    method: str,
    threshold: float,
    boundary: bool,
    min_size: int,
    seed_depth: float,
    progress: Progress,
) -> Iterator[np.ndarray]:
    depth = int(array.shape[0])
    offset = 0
    for z in range(depth):
        labels = drop_small(
            _label(probability(np.asarray(array[z])), method, threshold, boundary, seed_depth),
            min_size,
        )
        count = int(labels.max())
        if offset + count > MAX_ID:
            raise BadInput("More objects than 32-bit ids can number; raise min_size.")
        yield np.where(labels > 0, labels + np.uint32(offset), np.uint32(0)).astype(np.uint32)
        offset += count
        progress(z + 1, depth, "segmenting slices")


class UnionFind:
    """Disjoint sets of ids 0..n-1 (arrays grow as ids are added)."""

    def __init__(self) -> None:
        self.parent = np.zeros(1, np.int64)  # id 0: the background, never joined

    def add(self, count: int) -> None:
        start = len(self.parent)
        self.parent = np.concatenate([self.parent, np.arange(start, start + count)])

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, int(self.parent[i])
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the smaller id (the first seen) wins

    def roots(self) -> np.ndarray:
        parent = self.parent.copy()
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent
            parent = grand


def face_links(below: np.ndarray, above: np.ndarray, method: str) -> list[tuple[int, int]]:
    """The id pairs to join across a slab face (the last slice of one slab, the first of the
    next): every touching pair after a threshold (exact components), pairs whose overlap is
    at least STITCH_OVERLAP of the smaller of the two after a watershed."""
    both = (below > 0) & (above > 0)
    pairs, overlap = np.unique(
        np.stack([below[both], above[both]]).astype(np.int64), axis=1, return_counts=True
    )
    if method == "threshold" or not len(overlap):
        return [(int(a), int(b)) for a, b in pairs.T]
    area_below, area_above = areas(below), areas(above)
    return [
        (int(a), int(b))
        for (a, b), n in zip(pairs.T.tolist(), overlap.tolist(), strict=True)
        if n >= STITCH_OVERLAP * min(area_below[a], area_above[b])
    ]


def areas(labels: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(labels, return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def _slices_3d(
    ws: Workspace,
    array: Any,
    method: str,
    threshold: float,
    boundary: bool,
    min_size: int,
    seed_depth: float,
    sampling: tuple[float, ...],
    progress: Progress,
) -> Iterator[np.ndarray]:
    """Label slabs into a temporary store (provisional ids), join across faces, then yield
    each slice through the final id lookup (objects under `min_size` dropped)."""
    import zarr

    depth, height, width = (int(s) for s in array.shape)
    slab = max(1, SLAB_VOXELS // max(height * width, 1))
    tmp = ws.new_tmp_dir()
    try:
        store = zarr.create_array(
            str(tmp / "labels.zarr"),
            shape=(depth, height, width),
            chunks=chunks_for((depth, height, width)),
            dtype="uint64",
            fill_value=0,
        )
        sets, sizes = UnionFind(), [np.zeros(1, np.int64)]
        previous: np.ndarray | None = None
        for z0 in range(0, depth, slab):
            prob = probability(np.asarray(array[z0 : z0 + slab]))
            local = _label(prob, method, threshold, boundary, seed_depth, sampling)
            count = int(local.max())
            labels = np.where(local > 0, local.astype(np.uint64) + len(sets.parent) - 1, 0)
            sets.add(count)
            sizes.append(np.bincount(local.ravel(), minlength=count + 1)[1:].astype(np.int64))
            if previous is not None:
                for a, b in face_links(previous, labels[0], method):
                    sets.union(a, b)
            store[z0 : z0 + len(labels)] = labels
            previous = labels[-1]
            progress(min(z0 + slab, depth), depth, "labelling slabs")
        lookup = final_ids(sets.roots(), np.concatenate(sizes), min_size)
        for z in range(depth):
            yield lookup[np.asarray(store[z])]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def final_ids(roots: np.ndarray, sizes: np.ndarray, min_size: int) -> np.ndarray:
    """provisional id → final id (uint32): joined ids share their root's, numbered 1..n in
    order of first appearance; objects under `min_size` voxels (summed) become 0."""
    totals = np.bincount(roots, weights=sizes, minlength=len(roots))
    keep = (totals >= max(min_size, 1)) & (np.arange(len(roots)) == roots)
    keep[0] = False
    if int(keep.sum()) > MAX_ID:
        raise BadInput("More objects than 32-bit ids can number; raise min_size.")
    numbers = np.zeros(len(roots), np.uint32)
    numbers[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    lookup: np.ndarray = numbers[roots]
    return lookup
