"""The procedural demo volume: deterministic, dense, EM-like, with exactly its listed errors."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import zarr

from unem.demo import (
    DEFAULT_SHAPE,
    DEMO_NAME,
    VOXEL_SIZE,
    DemoVolume,
    create_demo_dataset,
    generate_demo_volume,
)
from unem.workspace import Workspace

SMALL = (8, 128, 128)


@pytest.fixture(scope="module")
def demo() -> DemoVolume:
    return generate_demo_volume()


def overlaps(a: np.ndarray, b: np.ndarray) -> dict[int, set[int]]:
    """For each id of `a`, the ids of `b` it shares voxels with."""
    pairs = np.unique(a.astype(np.uint64) << np.uint64(32) | b.astype(np.uint64))
    result: dict[int, set[int]] = defaultdict(set)
    for key in pairs.tolist():
        result[key >> 32].add(key & 0xFFFFFFFF)
    return dict(result)


def in_plane_boundaries(labels: np.ndarray) -> np.ndarray:
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :, 1:] |= labels[:, :, 1:] != labels[:, :, :-1]
    return edge


def test_same_seed_gives_identical_volumes() -> None:
    first, second = generate_demo_volume(SMALL, seed=3), generate_demo_volume(SMALL, seed=3)
    for name in ("image", "truth", "segmentation"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.merged_pairs == second.merged_pairs
    assert first.split_ids == second.split_ids


def test_different_seeds_give_different_volumes() -> None:
    first, second = generate_demo_volume(SMALL, seed=3), generate_demo_volume(SMALL, seed=4)
    assert not np.array_equal(first.image, second.image)
    assert not np.array_equal(first.truth, second.truth)


def test_dtypes_shapes_and_voxel_size(demo: DemoVolume) -> None:
    assert demo.image.dtype == np.uint8
    assert demo.truth.dtype == np.uint32
    assert demo.segmentation.dtype == np.uint32
    for array in (demo.image, demo.truth, demo.segmentation):
        assert array.shape == DEFAULT_SHAPE
    assert demo.voxel_size == VOXEL_SIZE == (40.0, 8.0, 8.0)


def test_other_shapes_are_honoured() -> None:
    volume = generate_demo_volume((5, 64, 96), seed=1)
    assert volume.image.shape == volume.truth.shape == volume.segmentation.shape == (5, 64, 96)


def test_truth_is_dense_with_a_sensible_number_of_cells(demo: DemoVolume) -> None:
    assert demo.truth.min() >= 1
    ids = np.unique(demo.truth)
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))  # consecutive ids
    assert 40 <= ids.size <= 100
    sizes = np.bincount(demo.truth.ravel())[1:]
    assert (sizes > 5000).sum() >= 30  # most cells are substantial, not slivers


def test_cells_run_along_z(demo: DemoVolume) -> None:
    """A neurite is mostly the same id from one section to the next."""
    same = (demo.truth[1:] == demo.truth[:-1]).mean()
    assert same > 0.85
    spans = [np.unique(np.nonzero(demo.truth == cell)[0]).size for cell in range(1, 21)]
    assert np.median(spans) >= DEFAULT_SHAPE[0] // 2


def test_membranes_are_darker_than_cytoplasm(demo: DemoVolume) -> None:
    boundaries = in_plane_boundaries(demo.truth)
    membrane = demo.image[boundaries].mean()
    cytoplasm = np.median(demo.image[~boundaries])
    assert membrane < cytoplasm - 40
    assert 120 <= cytoplasm <= 180
    assert 40 <= membrane <= 110


def test_image_is_noisy_not_flat(demo: DemoVolume) -> None:
    assert demo.image.std() > 15
    assert np.unique(demo.image).size > 100


def test_segmentation_has_exactly_the_listed_errors(demo: DemoVolume) -> None:
    assert len(demo.merged_pairs) == 3
    assert len(demo.split_ids) == 3
    involved = [cell for pair in demo.merged_pairs for cell in pair] + demo.split_ids
    assert len(set(involved)) == len(involved)  # no cell is in two errors
    assert demo.segmentation.min() >= 1

    truth_to_seg = overlaps(demo.truth, demo.segmentation)
    seg_to_truth = overlaps(demo.segmentation, demo.truth)
    for cell, segments in truth_to_seg.items():
        assert len(segments) == (2 if cell in demo.split_ids else 1), cell
    merged = {frozenset(pair) for pair in demo.merged_pairs}
    for segment, cells in seg_to_truth.items():
        if len(cells) > 1:
            assert frozenset(cells) in merged, segment
    for a, b in demo.merged_pairs:
        assert truth_to_seg[a] == truth_to_seg[b]
        assert len(seg_to_truth[next(iter(truth_to_seg[a]))]) == 2


def touch(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether masks `a` and `b` share a face along any axis."""
    for axis in range(a.ndim):
        head = tuple(slice(1, None) if i == axis else slice(None) for i in range(a.ndim))
        tail = tuple(slice(None, -1) if i == axis else slice(None) for i in range(a.ndim))
        if (a[head] & b[tail]).any() or (a[tail] & b[head]).any():
            return True
    return False


def test_merged_cells_touch(demo: DemoVolume) -> None:
    for a, b in demo.merged_pairs:
        assert touch(demo.truth == a, demo.truth == b), (a, b)


def test_splits_are_substantial(demo: DemoVolume) -> None:
    for cell in demo.split_ids:
        parts = np.unique(demo.segmentation[demo.truth == cell], return_counts=True)[1]
        assert parts.size == 2
        assert parts.min() >= 0.2 * parts.sum()


def test_create_demo_dataset_stores_the_generated_volume(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    reports: list[tuple[int, int, str]] = []
    dataset = create_demo_dataset(
        ws, user="alice", shape=SMALL, seed=2,
        progress=lambda step, total, message="": reports.append((step, total, message)),
    )
    expected = generate_demo_volume(SMALL, seed=2)
    assert dataset.name == DEMO_NAME
    assert dataset.created_by == "alice"
    assert dataset.shape == SMALL
    assert dataset.voxel_size == VOXEL_SIZE
    assert set(dataset.layers) == {"image", "segmentation", "groundtruth"}
    for name, array in (("image", expected.image), ("segmentation", expected.segmentation),
                        ("groundtruth", expected.truth)):
        stored = zarr.open_array(str(dataset.layer(name).path / "0"), mode="r")
        np.testing.assert_array_equal(stored[...], array)

    steps = [step for step, _, _ in reports]
    totals = {total for _, total, _ in reports}
    assert len(totals) == 1  # one bar over generation and import
    assert steps == sorted(steps)
    assert steps[0] == 0 and steps[-1] == totals.pop()


def test_generation_of_the_default_shape_is_fast() -> None:
    start = time.perf_counter()
    generate_demo_volume(DEFAULT_SHAPE, seed=5)
    assert time.perf_counter() - start < 10
