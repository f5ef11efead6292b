"""Every filter of the catalog on 2D and 3D inputs of several dtypes, and what each is for:
Otsu separates a bimodal image, fill holes fills, remove small objects removes, labelling
counts differ in 2D and 3D, a watershed splits touching discs, 2D labels link into 3D."""

from __future__ import annotations

from typing import Any

import cc3d
import fastremap
import numpy as np
import pytest

from unem.errors import BadInput
from unem.filters.catalog import DATA_KINDS, Filter, catalog, get_filter
from unem.filters.gaussian import smoothed_slices
from unem.filters.runner import apply_filter

ISSUE_FILTERS = {
    "gaussian", "median", "clahe", "invert", "normalise", "threshold", "otsu", "canny",
    "unsharp-mask", "erode", "dilate", "open", "close", "fill-holes", "remove-small-objects",
    "distance-transform", "label", "watershed", "size-filter", "relabel", "link-overlap",
}  # fmt: skip
SHAPE = (6, 48, 64)


def discs(shape: tuple[int, ...], centres: list[tuple[int, ...]], radius: float) -> np.ndarray:
    """A mask of discs (2D) or balls (3D) of `radius` around `centres`."""
    grid = np.indices(shape)
    mask = np.zeros(shape, bool)
    for centre in centres:
        mask |= sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
    return mask


def samples(kind: str) -> list[np.ndarray]:
    """3D inputs of `kind` in the dtypes a pipeline may give it."""
    rng = np.random.default_rng(7)
    blobs = discs(SHAPE, [(2, 15, 15), (3, 30, 44), (4, 12, 50)], 8)
    noise = rng.normal(0, 0.08, SHAPE)
    intensity = np.clip(0.25 + 0.5 * blobs + noise, 0, 1)
    if kind == "image":
        return [
            np.rint(intensity * 255).astype(np.uint8),
            np.rint(intensity * 65535).astype(np.uint16),
        ]
    if kind == "prediction":
        return [intensity.astype(np.float32)]
    if kind == "mask":
        return [blobs]
    labels = cc3d.connected_components(blobs.view(np.uint8), connectivity=6)
    return [labels.astype(np.uint32), (labels.astype(np.uint64) * 2**33)]


def three_d_options(item: Filter) -> dict[str, Any] | None:
    """Options that make `item` work across slices, or None if it never does."""
    if item.pointwise:
        return None
    fields = item.options.model_fields
    for name, value in (("sigma_z", 1.0), ("size_z", 3), ("radius_z", 1)):
        if name in fields:
            return {name: value}
    if "dims" in fields:
        return {"dims": "3d"}
    return {} if item.dims == ("3d",) else None


def expected_dtype(item: Filter, given: np.dtype[Any]) -> set[Any]:
    output = item.output
    if output == "mask":
        return {np.dtype(bool)}
    if output == "labels" or (output is None and given.kind == "u" and given.itemsize >= 4):
        return {np.dtype(np.uint32), np.dtype(np.uint64)}
    if output == "image":
        return {np.dtype(np.float32)}
    return {given}


def test_the_catalog_has_every_filter_of_the_issue_with_documented_options() -> None:
    filters = catalog().filters
    assert set(filters) >= ISSUE_FILTERS
    for item in filters.values():
        described = item.to_json()
        assert described["schema"]["type"] == "object" and described["title"]
        assert set(described["inputs"]) <= set(DATA_KINDS)
        for name, field in item.options.model_fields.items():
            assert field.description, f"{item.name}.{name} has no description"
            assert not field.is_required(), f"{item.name}.{name} has no default"


CASES = [
    (item.name, kind, index)
    for item in catalog().filters.values()
    for kind in sorted(item.inputs)
    for index in range(len(samples(kind)))
]


@pytest.mark.parametrize(("name", "kind", "index"), CASES)
def test_every_filter_on_slices_and_volumes(name: str, kind: str, index: int) -> None:
    item = get_filter(name)
    volume = samples(kind)[index]
    before = volume.copy()
    dtypes = expected_dtype(item, volume.dtype)
    if item.dims != ("3d",):  # a slice, then each slice of the volume
        plane = apply_filter(name, volume[3])
        assert plane.shape == volume.shape[1:] and plane.dtype in dtypes, plane.dtype
        stacked = apply_filter(name, volume)
        assert stacked.shape == volume.shape and stacked.dtype in dtypes
        if not item.new_ids:
            assert np.array_equal(stacked[3], plane)
    else:
        with pytest.raises(BadInput, match="give it a volume"):
            apply_filter(name, volume[3])
    options = three_d_options(item)
    if options is not None:
        result = apply_filter(name, volume, **options)
        assert result.shape == volume.shape and result.dtype in dtypes
    assert np.array_equal(volume, before)  # inputs are never modified


def test_otsu_separates_a_bimodal_image() -> None:
    rng = np.random.default_rng(1)
    truth = np.zeros((64, 64), bool)
    truth[16:48, 10:40] = True
    image = np.where(truth, rng.normal(190, 12, truth.shape), rng.normal(60, 12, truth.shape))
    for dtype, scale in ((np.uint8, 1), (np.uint16, 250)):
        data = np.clip(image * scale, 0, np.iinfo(dtype).max).astype(dtype)
        assert np.array_equal(apply_filter("otsu", data), truth)
        assert np.array_equal(apply_filter("otsu", data, below=True), ~truth)
        volume = np.stack([data, data // 2])  # the darker slice: one threshold for both
        mask = apply_filter("otsu", volume, dims="3d")
        assert np.array_equal(mask[0], truth) and mask[1].sum() < truth.sum()


def test_fixed_threshold_is_a_fraction_of_the_range() -> None:
    image = np.array([[0, 127, 128, 255]], np.uint8)
    assert apply_filter("threshold", image).tolist() == [[False, False, True, True]]
    assert apply_filter("threshold", image, threshold=0.2, below=True).tolist() == [
        [True, False, False, False]
    ]
    prediction = np.array([[0.1, 0.5, 0.9]], np.float32)
    assert apply_filter("threshold", prediction, threshold=0.6).tolist() == [[False, False, True]]
    assert apply_filter("threshold", image.astype(np.uint16) * 257).tolist() == [
        [False, False, True, True]
    ]


def test_fill_holes_fills_rings_and_hollow_balls() -> None:
    ring = discs((40, 40), [(20, 20)], 12) & ~discs((40, 40), [(20, 20)], 6)
    assert np.array_equal(apply_filter("fill-holes", ring), discs((40, 40), [(20, 20)], 12))
    shell = discs((21, 21, 21), [(10, 10, 10)], 9) & ~discs((21, 21, 21), [(10, 10, 10)], 5)
    filled = apply_filter("fill-holes", shell, dims="3d")
    assert np.array_equal(filled, discs((21, 21, 21), [(10, 10, 10)], 9))
    tube = np.stack([ring] * 5)  # open at both ends: its hole is no hole in 3D
    assert np.array_equal(apply_filter("fill-holes", tube, dims="3d"), tube)
    assert np.array_equal(apply_filter("fill-holes", tube)[2], discs((40, 40), [(20, 20)], 12))


def test_remove_small_objects_removes_only_small_ones() -> None:
    mask = discs((60, 60), [(15, 15)], 9)
    mask[50:52, 50:52] = True  # 4 pixels
    kept = apply_filter("remove-small-objects", mask, min_size=20)
    assert np.array_equal(kept, discs((60, 60), [(15, 15)], 9))
    volume = np.stack([mask] * 4)  # the speck is 16 voxels in 3D, 4 pixels per slice
    assert apply_filter("remove-small-objects", volume, dims="3d", min_size=10)[:, 50, 50].all()
    assert not apply_filter("remove-small-objects", volume, min_size=10)[:, 50, 50].any()


def test_labelling_counts_objects_in_2d_and_in_3d() -> None:
    volume = np.zeros((3, 20, 20), bool)
    volume[:, 5:10, 5:10] = True  # one column through every slice
    volume[1, 14:17, 14:17] = True
    volume[2, 17, 17] = True  # touches the slice above by a corner only
    two_d = apply_filter("label", volume)
    assert len(np.unique(two_d[two_d > 0])) == 5  # 1 + 2 + 2 objects, ids unique across slices
    three_d = apply_filter("label", volume, dims="3d")
    assert len(np.unique(three_d[three_d > 0])) == 3
    corners = apply_filter("label", volume, dims="3d", connectivity="corners")
    assert len(np.unique(corners[corners > 0])) == 2
    expected = cc3d.connected_components(volume.view(np.uint8), connectivity=26)
    assert np.array_equal(corners, expected)


def test_labelling_splits_labels_into_connected_parts() -> None:
    labels = np.zeros((10, 10), np.uint64)
    labels[1:3, 1:3] = 2**40
    labels[6:8, 6:8] = 2**40  # the same id in two places
    labels[1:3, 3:5] = 7  # touching the first part, another id
    parts = apply_filter("label", labels)
    assert parts.dtype == np.uint32 and len(np.unique(parts[parts > 0])) == 3


def test_watershed_from_distance_peaks_splits_two_touching_discs() -> None:
    mask = discs((60, 90), [(30, 28), (30, 60)], 18)
    assert cc3d.connected_components(mask.view(np.uint8), connectivity=4).max() == 1
    labels = apply_filter("watershed", mask)
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]
    assert labels[30, 28] != labels[30, 60] and np.array_equal(labels > 0, mask)
    balls = discs((30, 40, 70), [(15, 20, 22), (15, 20, 47)], 14)
    labels_3d = apply_filter("watershed", balls, dims="3d")
    assert len(np.unique(labels_3d[labels_3d > 0])) == 2


def test_watershed_of_a_probability_map_from_either_seeds() -> None:
    prob = np.full((40, 60), 0.05, np.float32)
    prob[:, 29:31] = 0.95  # a membrane between two cells
    for seeds in ("distance", "probability"):
        labels = apply_filter("watershed", prob, seeds=seeds)
        assert labels[20, 10] != labels[20, 50] and len(np.unique(labels)) == 2, seeds
    objects = 1 - prob  # an object map: the cells are where it is high
    labels = apply_filter("watershed", objects, seeds="probability", boundary=False)
    assert labels[20, 10] != labels[20, 50] and labels[20, 29:31].tolist() == [0, 0]


def test_size_filter_and_sequential_relabel() -> None:
    labels = np.zeros((2, 20, 20), np.uint32)
    labels[:, :2, :2] = 9  # 8 voxels in 3D, 4 per slice
    labels[0, 5:15, 5:15] = 70  # 100 voxels
    labels[1, 5:8, 5:8] = 4  # 9 voxels
    kept = apply_filter("size-filter", labels, dims="3d", min_size=6, max_size=50)
    assert sorted(np.unique(kept).tolist()) == [0, 4, 9]
    per_slice = apply_filter("size-filter", labels, min_size=6)
    assert sorted(np.unique(per_slice).tolist()) == [0, 4, 70]
    renumbered = apply_filter("relabel", labels)
    assert sorted(np.unique(renumbered).tolist()) == [0, 1, 2, 3]
    assert np.array_equal(renumbered, fastremap.renumber(labels)[0])


def test_linking_2d_labels_into_3d_objects_by_overlap() -> None:
    slices = np.zeros((4, 30, 30), np.uint32)
    for z in range(4):
        slices[z, 5:12, 5 + z : 12 + z] = 10 + z  # a drifting object, a new id every slice
        slices[z, 20:26, 20:26] = 50 + z
    slices[3, 0:2, 28:30] = 99  # appears in the last slice only
    slices[2, 20:26, 2:4] = 7  # overlaps nothing above it
    linked = apply_filter("link-overlap", slices)
    assert len(np.unique(linked[:, 5:12, 8])) == 1  # the drifting object keeps one id
    assert len(np.unique(linked[:, 22, 22])) == 1
    assert len(np.unique(linked[linked > 0])) == 4
    strict = apply_filter("link-overlap", slices, min_overlap=0.9)  # a drift of 1 of 7 breaks it
    assert len(np.unique(strict[:, 8, 8])) == 4


def test_distance_transform_and_canny() -> None:
    disc = discs((41, 41), [(20, 20)], 12)
    distance = apply_filter("distance-transform", disc)
    assert distance.dtype == np.float32 and 12 <= distance[20, 20] <= 13 and distance[0, 0] == 0
    column = np.stack([disc] * 9)
    anisotropic = apply_filter("distance-transform", column, dims="3d", sampling_z=10)
    assert anisotropic[4, 20, 20] == pytest.approx(distance[20, 20])  # the slab ends 50 px away
    square = np.zeros((40, 40), np.uint8)
    square[10:30, 10:30] = 200
    edges = apply_filter("canny", square, sigma=1)
    assert edges.any() and not edges[15:25, 15:25].any() and not edges[:5].any()


def test_intensity_filters_do_what_they_say() -> None:
    rng = np.random.default_rng(3)
    flat = np.full((40, 40), 100, np.uint8)
    noisy = flat.copy()
    noisy[rng.random(flat.shape) < 0.05] = 255  # salt
    assert np.array_equal(apply_filter("median", noisy), flat)
    assert apply_filter("invert", np.array([[0, 55]], np.uint8)).tolist() == [[255, 200]]
    assert np.allclose(apply_filter("invert", np.array([[0.25]], np.float32)), 0.75)
    dim = (rng.normal(100, 5, (64, 64))).astype(np.uint8)
    stretched = apply_filter("normalise", dim, low=0, high=100)
    assert stretched.min() == 0 and stretched.max() == 255
    assert apply_filter("clahe", dim, kernel_size=16).std() > 3 * dim.std()
    edge = np.zeros((20, 20), np.uint8)
    edge[:, 10:] = 100
    sharp = apply_filter("unsharp-mask", edge, radius=1, amount=2)
    assert sharp[5, 10] > 100 and sharp[5, 9] == 0


def test_the_gaussian_step_is_the_gaussian_job_folded_into_the_catalog() -> None:
    volume = samples("image")[0]
    job = np.stack(list(smoothed_slices(volume, 1.5, 1.0, "uint8")))
    assert np.array_equal(apply_filter("gaussian", volume, sigma=1.5, sigma_z=1.0), job)
    per_slice = np.stack(list(smoothed_slices(volume, 2.0, 0.0, "uint8")))
    assert np.array_equal(apply_filter("gaussian", volume, sigma=2.0), per_slice)


def test_morphology_on_masks_and_images() -> None:
    disc = discs((41, 41), [(20, 20)], 10)
    assert apply_filter("erode", disc, radius=2).sum() < disc.sum()
    assert apply_filter("dilate", disc, radius=2).sum() > disc.sum()
    speck = disc.copy()
    speck[2, 2] = True
    assert np.array_equal(
        apply_filter("open", speck, radius=1), apply_filter("open", disc, radius=1)
    )
    cut = disc.copy()
    cut[:, 20] = False
    assert apply_filter("close", cut, radius=1)[20, 20]
    image = np.full((9, 9), 10, np.uint8)
    image[4, 4] = 200
    assert apply_filter("dilate", image, radius=1, shape="square")[3:6, 3:6].min() == 200
    empty = np.zeros_like(disc)
    column = apply_filter("erode", np.stack([empty, *[disc] * 5, empty]), radius=2, radius_z=1)
    assert not column[1].any() and column[3].any()  # the column's ends erode in z too


def test_bad_options_name_the_field() -> None:
    with pytest.raises(BadInput, match="size") as error:
        apply_filter("median", np.zeros((4, 4), np.uint8), size=99)
    assert error.value.detail[0]["field"] == "size"
    with pytest.raises(BadInput, match="colour"):
        apply_filter("gaussian", np.zeros((4, 4), np.uint8), colour=3)
