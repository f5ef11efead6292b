"""The FFN canvas with fake models (NumPy functions with the FFN model's contract): objects
flood-filled from seeds, thresholds, sizes, ownership, and exact restore from a checkpoint."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from scipy import ndimage

from unem.ffn.canvas import Canvas, CanvasSettings, CanvasState, Predict
from unem.ffn.policies import grid_seeds

SETTINGS = CanvasSettings(fov=(5, 9, 9), deltas=(1, 2, 2), min_segment_size=10)


def cells(shape: tuple[int, int, int] = (16, 40, 40), wall: int = 2) -> np.ndarray:
    """Labels: three box cells separated (and bordered) by walls of 0."""
    labels = np.zeros(shape, np.uint64)
    half = shape[1] // 2
    labels[:, 1 : half - wall // 2, 1 : half - wall // 2] = 1
    labels[:, 1 : half - wall // 2, half + (wall + 1) // 2 : -1] = 2
    labels[:, half + (wall + 1) // 2 : -1, 1:-1] = 3
    return labels


def centred_bonus(shape: tuple[int, ...]) -> np.ndarray:
    """A small bonus falling with the distance to the FOV centre: faces peak in their middle."""
    grid = np.indices(shape) - np.reshape([s // 2 for s in shape], (3, 1, 1, 1))
    bonus: np.ndarray = -0.01 * np.sqrt((grid**2).sum(0))
    return bonus


def oracle(leak: int = 0, strength: float = 3.0) -> Predict:
    """A perfect model: the image holds labels and the object is the centre voxel's label,
    grown by `leak` voxels into the walls around it (so that objects compete for walls).
    Centred on a wall, it has no opinion: it returns the seed unchanged."""

    def predict(batch: np.ndarray) -> np.ndarray:
        image, seed = batch[0, ..., 0], batch[0, ..., 1]
        value = image[tuple(s // 2 for s in image.shape)]
        if value == 0:
            return batch[..., 1:].copy()
        mask = image == value
        if leak:
            mask |= ndimage.binary_dilation(mask, iterations=leak) & (image == 0)
        logits = np.where(mask, strength, -strength) + centred_bonus(image.shape)
        logits = logits + 0.1 * np.tanh(seed)  # the seed matters a little, as in a real FFN
        return logits.astype(np.float32)[None, ..., None]

    return predict


def segment(
    labels: np.ndarray,
    seeds: np.ndarray,
    predict: Predict | None = None,
    settings: CanvasSettings = SETTINGS,
    after_seed: Callable[[Canvas], None] | None = None,
) -> Canvas:
    canvas = Canvas(labels.astype(np.float32), settings, predict or oracle(), seeds)
    canvas.segment_all(after_seed)
    return canvas


def assert_same_partition(segmentation: np.ndarray, labels: np.ndarray) -> None:
    """Each label is one object and each object one label; label 0 stays 0."""
    assert not segmentation[labels == 0].any()
    for value in np.unique(labels[labels > 0]):
        ids = np.unique(segmentation[labels == value])
        assert len(ids) == 1 and ids[0] > 0, (value, ids)
    assert len(np.unique(segmentation[segmentation > 0])) == len(np.unique(labels[labels > 0]))


def test_separate_objects_are_segmented_whole_from_one_seed_each() -> None:
    labels = cells()
    seeds = grid_seeds(labels.shape, (4, 6, 6), (2, 4, 4))
    canvas = segment(labels, seeds)
    assert_same_partition(canvas.segmentation, labels)
    assert canvas.segmentation.dtype == np.uint64
    assert canvas.stats.objects == 3 and canvas.stats.voxels == int((labels > 0).sum())
    assert canvas.stats.fovs > 3 and canvas.stats.seeds_tried == 3  # later seeds are owned
    for key, origin in canvas.state.origins.items():
        assert canvas.segmentation[origin] == key
    # The probability layer holds the owner's probability (≈ 0.95 here), 0 elsewhere.
    owned = canvas.segmentation > 0
    assert canvas.state.probability[owned].min() >= 240
    assert not canvas.state.probability[~owned].any()


def test_objects_are_the_component_holding_the_seed() -> None:
    labels = cells()
    labels[labels == 2] = 1  # cells 1 and 2 share a value but not a border
    seeds = np.array([[8, 10, 10], [8, 10, 30], [8, 30, 20]])
    canvas = segment(labels, seeds)
    assert [canvas.segmentation[tuple(s)] for s in seeds] == [1, 2, 3]
    assert canvas.stats.objects == 3


def test_min_segment_size_is_honoured() -> None:
    labels = np.zeros((12, 24, 24), np.uint64)
    labels[4:8, 8:12, 8:12] = 5  # 64 voxels
    seeds = np.array([[6, 10, 10]])
    big = CanvasSettings(fov=(5, 9, 9), deltas=(1, 2, 2), min_segment_size=65)
    assert segment(labels, seeds, settings=big).stats.objects == 0
    small = CanvasSettings(fov=(5, 9, 9), deltas=(1, 2, 2), min_segment_size=64)
    canvas = segment(labels, seeds, settings=small)
    assert canvas.stats.objects == 1 and int((canvas.segmentation == 1).sum()) == 64


def test_segment_threshold_decides_the_voxels() -> None:
    labels = cells()
    seeds = np.array([[8, 10, 10]])
    weak = CanvasSettings(
        fov=(5, 9, 9), deltas=(1, 2, 2), segment_threshold=0.99, min_segment_size=1
    )
    # The oracle says p ≈ 0.95 inside: above the move threshold, below 0.99 except where
    # revisits pile up logits: so no full cell, and never a voxel outside it.
    canvas = segment(labels, seeds, oracle(strength=3.0), weak)
    assert int((canvas.segmentation > 0).sum()) < int((labels == 1).sum())
    assert not canvas.segmentation[labels != 1].any()


def test_weak_seeds_seeds_near_objects_and_seeds_without_context_make_nothing() -> None:
    labels = cells()
    seeds = np.array(
        [
            [8, 0, 10],  # on the border: no room for a field of view
            [8, 20, 20],  # on a wall: the seed stays alone, a 1-voxel object
            [8, 10, 10],  # cell 1
            [8, 10, 21],  # cell 2, 3 voxels (x) from cell 1
        ]
    )
    canvas = segment(labels, seeds)
    assert canvas.stats.seeds_tried == 3 and canvas.stats.objects == 2
    near = CanvasSettings(fov=(5, 9, 9), deltas=(1, 2, 2), min_boundary_dist=(1, 3, 3))
    canvas = segment(labels, seeds, settings=near)
    assert canvas.stats.objects == 1  # now the last seed is too close to cell 1


def test_owned_voxels_are_never_given_to_a_later_object() -> None:
    labels = cells(wall=2)
    walls = labels == 0
    seeds = np.array([[8, 10, 10], [8, 10, 30], [8, 30, 20]])
    forward = segment(labels, seeds, oracle(leak=2)).segmentation
    reverse = segment(labels, seeds[::-1].copy(), oracle(leak=2)).segmentation
    # Every cell is whole; the walls went to whoever came first.
    for segmentation in (forward, reverse):
        assert_same_partition(np.where(walls, 0, segmentation), labels)
    shared = walls & (ndimage.binary_dilation(labels == 1, iterations=2))
    shared &= ndimage.binary_dilation(labels == 2, iterations=2)
    assert shared.sum() > 0
    assert np.all(forward[shared] == forward[8, 10, 10])  # cell 1 came first
    assert np.all(reverse[shared] == reverse[8, 10, 30])  # cell 2 came before cell 1


def snapshot(canvas: Canvas) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **canvas.state.to_arrays())
    return buffer.getvalue()


@pytest.mark.parametrize("stop_after", [1, 5])
def test_a_canvas_restored_from_a_checkpoint_ends_as_an_uninterrupted_one(
    stop_after: int,
) -> None:
    labels = cells(wall=2)
    seeds = grid_seeds(labels.shape, (3, 5, 5), (2, 4, 4))[::-1].copy()
    predict = oracle(leak=2)
    whole = segment(labels, seeds, predict)

    saved: list[bytes] = []

    class Stop(Exception):
        pass

    def stop(canvas: Canvas) -> None:
        saved.append(snapshot(canvas))
        if canvas.state.next_seed == stop_after:
            raise Stop

    with pytest.raises(Stop):
        segment(labels, seeds, predict, after_seed=stop)
    resumed = Canvas(labels.astype(np.float32), SETTINGS, predict, np.zeros((0, 3), np.int64))
    with np.load(io.BytesIO(saved[-1])) as data:
        resumed.restore(CanvasState.from_arrays(data))
    assert resumed.state.next_seed == stop_after
    resumed.segment_all()
    assert np.array_equal(resumed.segmentation, whole.segmentation)
    assert np.array_equal(resumed.state.probability, whole.state.probability)
    assert resumed.state.origins == whole.state.origins
    assert resumed.state.max_id == whole.state.max_id
    assert resumed.stats.fovs == whole.stats.fovs  # counters continue too


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="odd"):
        CanvasSettings(fov=(4, 9, 9), deltas=(1, 2, 2))
    with pytest.raises(ValueError, match="deltas"):
        CanvasSettings(fov=(5, 9, 9), deltas=(3, 2, 2))
    with pytest.raises(ValueError, match="init_activation"):
        CanvasSettings(fov=(5, 9, 9), deltas=(1, 2, 2), init_activation=0.8)
