"""Prediction → instance ids: threshold and watershed, 2D and 3D, on synthetic predictions
whose objects are known (discs, a membrane grid, a tube through the slices)."""

from __future__ import annotations

import numpy as np
import pytest

from unem.errors import BadInput
from unem.filters import postprocess
from unem.filters.postprocess import (
    drop_small,
    label_threshold,
    label_watershed,
    probability,
    segment_prediction,
)
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

SHAPE = (80, 120)


def disc(cy: float, cx: float, r: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask: np.ndarray = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    return mask


def blobs() -> np.ndarray:
    """An object map (uint8 probability): two separate discs, two touching discs and a
    speck of 5 pixels."""
    mask = disc(20, 20, 10) | disc(60, 25, 8) | disc(40, 70, 12) | disc(40, 92, 12)
    mask[75:76, 110:115] = True  # the speck
    return np.where(mask, 230, 10).astype(np.uint8)


def membranes(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """A boundary map: lines 2 px wide cutting the slice into 3 × 4 cells."""
    prob = np.full(shape, 15, np.uint8)
    for y in (25, 52):
        prob[y : y + 2] = 240
    for x in (28, 58, 88):
        prob[:, x : x + 2] = 240
    return prob


def objects(labels: np.ndarray) -> int:
    return len(np.unique(labels[labels > 0]))


def test_probability_reads_every_prediction_dtype() -> None:
    assert probability(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert probability(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert probability(np.array([-0.5, 0.25, 2.0, np.nan], np.float32)).tolist() == [
        0.0,
        0.25,
        1.0,
        0.0,
    ]


def test_threshold_finds_each_blob_and_watershed_splits_the_touching_pair() -> None:
    prob = probability(blobs())
    assert objects(label_threshold(prob, 0.5, boundary=False)) == 4  # the pair is one
    split = label_watershed(prob, 0.5, boundary=False)
    # The two separate discs and each of the touching pair; the speck, too thin to hold a
    # seed (its distance to the outside never reaches seed_depth), stays background.
    assert objects(split) == 4 and split[75, 112] == 0
    assert split[40, 70] != split[40, 92] and split[40, 70] and split[40, 92]
    assert split[5, 110] == 0  # background stays background with an object map


def test_watershed_on_a_membrane_map_gives_one_region_per_cell() -> None:
    prob = probability(membranes())
    cells = label_watershed(prob, 0.5, boundary=True)
    assert objects(cells) == 12 and (cells > 0).all()  # regions meet on the membranes
    assert objects(label_threshold(prob, 0.5, boundary=True)) == 12
    assert label_threshold(prob, 0.5, boundary=True)[25, 10] == 0  # the membrane itself


def test_a_gap_in_a_membrane_merges_with_a_threshold_but_not_with_a_watershed() -> None:
    prob = membranes()
    prob[10:16, 58:60] = 15  # a hole in the middle vertical line, upper row of cells
    prob = probability(prob)
    assert objects(label_threshold(prob, 0.5, boundary=True)) == 11
    assert objects(label_watershed(prob, 0.5, boundary=True, seed_depth=2)) == 12


def test_drop_small_renumbers_in_order() -> None:
    labels = np.array([[0, 5, 5, 5], [2, 2, 9, 0]], np.uint32)
    assert drop_small(labels, 2).tolist() == [[0, 2, 2, 2], [1, 1, 0, 0]]


def prediction_dataset(ws: Workspace, prediction: np.ndarray, name: str = "pred") -> Dataset:
    image = np.full(prediction.shape, 128, np.uint8)
    sources = {"image": array_source(image), "prediction": array_source(prediction)}
    return import_dataset(ws, name, sources, (40.0, 4.0, 4.0))


def run(ws: Workspace, dataset: Dataset, **options: object) -> np.ndarray:
    return np.stack(list(segment_prediction(ws, dataset.id, "prediction", **options)))  # type: ignore[arg-type]


def test_2d_mode_labels_each_slice_with_ids_unique_across_slices(workspace: Workspace) -> None:
    dataset = prediction_dataset(workspace, np.stack([blobs()] * 3))
    for method in ("threshold", "watershed"):
        labels = run(workspace, dataset, method=method, boundary=False, mode="2d")
        assert labels.dtype == np.uint32 and labels.shape == dataset.shape
        per_slice = [set(np.unique(s[s > 0]).tolist()) for s in labels]
        assert all(len(ids) == len(per_slice[0]) for ids in per_slice)
        assert not (
            per_slice[0] & per_slice[1]
            or per_slice[1] & per_slice[2]
            or per_slice[0] & per_slice[2]
        )
        assert sorted(set().union(*per_slice)) == list(range(1, 3 * len(per_slice[0]) + 1))


def test_min_size_drops_small_objects(workspace: Workspace) -> None:
    dataset = prediction_dataset(workspace, np.stack([blobs()] * 2))
    kept = run(workspace, dataset, method="threshold", boundary=False, mode="2d", min_size=10)
    assert objects(kept[0]) == 3 and kept[0][75, 112] == 0  # the 5-pixel speck is gone
    everything = run(workspace, dataset, method="threshold", boundary=False, mode="2d")
    assert objects(everything[0]) == 4 and everything[0][75, 112] != 0


def tube_stack(depth: int = 6) -> np.ndarray:
    """Two blobs that continue through every slice, a third only on slice 0."""
    stack = np.stack([np.where(disc(20, 20, 9) | disc(50, 80, 11), 220, 5) for _ in range(depth)])
    stack[0][disc(65, 25, 7)] = 220
    return stack.astype(np.uint8)


@pytest.mark.parametrize("method", ["threshold", "watershed"])
def test_3d_mode_follows_objects_through_slabs(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    # Slabs of two slices: objects cross three slab faces and must keep one id.
    monkeypatch.setattr(postprocess, "SLAB_VOXELS", 2 * SHAPE[0] * SHAPE[1])
    dataset = prediction_dataset(workspace, tube_stack())
    labels = run(workspace, dataset, method=method, boundary=False, mode="3d")
    assert objects(labels) == 3
    assert len(set(labels[:, 20, 20].tolist())) == 1 and labels[0, 20, 20] != 0
    assert len(set(labels[:, 50, 80].tolist())) == 1 and labels[3, 50, 80] != labels[3, 20, 20]
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]
    small = run(workspace, dataset, method=method, boundary=False, mode="3d", min_size=200)
    assert objects(small) == 2 and small[0, 65, 25] == 0  # 3D size: summed over slabs


def test_3d_membranes_watershed_gives_one_region_per_cell_column(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postprocess, "SLAB_VOXELS", 3 * SHAPE[0] * SHAPE[1])
    dataset = prediction_dataset(workspace, np.stack([membranes()] * 7))
    labels = run(workspace, dataset, method="watershed", boundary=True, mode="3d")
    assert objects(labels) == 12 and (labels > 0).all()
    assert (labels == labels[0]).all()  # each cell keeps its id from top to bottom


def test_float_and_16_bit_predictions_segment_like_8_bit(workspace: Workspace) -> None:
    eight = blobs()
    as_float = prediction_dataset(workspace, np.stack([eight / 255.0] * 2).astype(np.float32), "f")
    as_16 = prediction_dataset(workspace, (np.stack([eight] * 2).astype(np.uint16) * 257), "u16")
    as_8 = prediction_dataset(workspace, np.stack([eight] * 2), "u8")
    results = [run(workspace, d, boundary=False, mode="2d") for d in (as_float, as_16, as_8)]
    assert np.array_equal(results[0], results[2]) and np.array_equal(results[1], results[2])


def test_bad_options_are_refused_before_any_work(workspace: Workspace) -> None:
    dataset = prediction_dataset(workspace, np.stack([blobs()] * 2))
    with pytest.raises(BadInput, match="labels"):
        segment_prediction(workspace, dataset.id, "segmentation")
    with pytest.raises(BadInput, match="threshold"):
        segment_prediction(workspace, dataset.id, "prediction", threshold=1.0)
    with pytest.raises(BadInput, match="mode"):
        segment_prediction(workspace, dataset.id, "prediction", mode="4d")  # type: ignore[arg-type]
