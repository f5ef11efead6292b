"""FFN training data: local object mask fractions and partitions checked by hand and by
brute force, balanced coordinates, and preparations stored in the workspace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unem.errors import BadInput, NotFound
from unem.ffn.options import THRESHOLDS, FFNPrepOptions, parse_box
from unem.ffn.prep import (
    EXCLUDED,
    build_coordinates,
    clear_small,
    compute_partitions,
    delete_preparation,
    get_preparation,
    list_preparations,
    object_fractions,
    prepare,
)
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace


def two_halves() -> np.ndarray:
    """3×3×6: label 1 for x < 2, label 2 for x ≥ 2."""
    labels = np.full((3, 3, 6), 2, dtype=np.uint32)
    labels[..., :2] = 1
    return labels


def test_fractions_of_two_halves_by_hand() -> None:
    fractions = object_fractions(two_halves(), (1, 1, 1))
    # the 3³ box around (1, 1, 1) holds x = 0, 1 (label 1) and x = 2 (label 2): 18/27
    assert fractions[1, 1, 1] == pytest.approx(2 / 3)
    assert fractions[1, 1, 2] == pytest.approx(2 / 3)  # x = 2, 3 of 1, 2, 3 are label 2
    assert fractions[1, 1, 3] == pytest.approx(1.0)  # x = 2, 3, 4: all label 2
    # at a corner the box leaves the volume: the outside counts as other labels
    assert fractions[0, 0, 0] == pytest.approx(8 / 27)


def test_partitions_of_two_halves_by_hand() -> None:
    partitions = compute_partitions(two_halves(), (1, 1, 1), THRESHOLDS)
    # 2/3 lies in [0.6, 0.7): the 10th partition; 1.0 ≥ 0.9: the 13th (the last)
    assert partitions[1, 1, 1] == partitions[1, 1, 2] == 10
    assert partitions[1, 1, 3] == partitions[1, 1, 4] == 13
    margin = np.ones((3, 3, 6), dtype=bool)
    margin[1, 1, 1:5] = False
    assert (partitions[margin] == EXCLUDED).all()


def test_thin_process_background_and_ignored_labels() -> None:
    labels = np.zeros((5, 5, 5), dtype=np.uint32)
    labels[2, 2, :] = 7  # a one-voxel-thin process along x
    labels[0, 0, 0] = 9
    partitions = compute_partitions(labels, (1, 1, 1), [0.1, 0.5])
    # 3 of the 27 voxels around a process voxel are the process: 1/9 ∈ [0.1, 0.5)
    assert object_fractions(labels, (1, 1, 1))[2, 2, 2] == pytest.approx(3 / 27)
    assert partitions[2, 2, 2] == 2
    assert partitions[1, 1, 1] == 0  # background inside the margin
    ignored = compute_partitions(labels, (1, 1, 1), [0.1, 0.5], ignore=[7])
    assert ignored[2, 2, 2] == EXCLUDED and ignored[1, 1, 1] == 0
    no_background = compute_partitions(labels, (1, 1, 1), [0.1, 0.5], include_background=False)
    assert no_background[1, 1, 1] == EXCLUDED and no_background[2, 2, 2] == 2


def test_fractions_match_brute_force_on_random_labels() -> None:
    labels = np.random.default_rng(3).integers(0, 5, (7, 9, 10)).astype(np.uint32)
    radius = (1, 2, 3)
    fractions = object_fractions(labels, radius)
    padded = np.pad(labels.astype(np.int64), [(r, r) for r in radius], constant_values=-1)
    size = np.prod([2 * r + 1 for r in radius])
    for z, y, x in np.ndindex(labels.shape):
        box = padded[z : z + 3, y : y + 5, x : x + 7]
        expected = (box == labels[z, y, x]).sum() / size if labels[z, y, x] else 0
        assert fractions[z, y, x] == pytest.approx(expected)


def test_clear_small_drops_small_objects_and_background_labels() -> None:
    labels = np.array([[[1, 1, 1, 2, 3, 3, 5, 5, 5, 5]]], dtype=np.uint32)
    cleared = clear_small(labels, 3, background=(5,))
    assert cleared.tolist() == [[[1, 1, 1, 0, 0, 0, 0, 0, 0, 0]]]
    assert labels[0, 0, 3] == 2  # the input is left alone


def test_coordinates_are_balanced_shuffled_and_outside_the_margin() -> None:
    labels = np.zeros((12, 20, 20), dtype=np.uint32)
    labels[:, 5:15, 5:15] = 1
    labels[:, 9, 2:18] = 2  # a thin process through the block
    partitions = compute_partitions(labels, (2, 3, 3), THRESHOLDS)
    coordinates, counts = build_coordinates(partitions, np.random.default_rng(0))
    drawn = partitions[tuple(coordinates.T)]
    values, per = np.unique(drawn, return_counts=True)
    assert EXCLUDED not in values and set(values.tolist()) == set(counts)
    assert (per == max(counts.values())).all()  # every partition resampled to the largest
    assert len(set(values.tolist())) >= 4
    assert (coordinates >= [2, 3, 3]).all() and (coordinates < [10, 17, 17]).all()
    assert not (np.diff(drawn.astype(int)) >= 0).all()  # shuffled, not grouped
    capped, _ = build_coordinates(partitions, np.random.default_rng(0), max_per_partition=5)
    assert len(capped) == 5 * len(counts)
    again, _ = build_coordinates(partitions, np.random.default_rng(0))
    assert (again == coordinates).all()  # the seed decides


def test_parse_box() -> None:
    assert parse_box("", (4, 5, 6)) == (slice(0, 4), slice(0, 5), slice(0, 6))
    assert parse_box("1:3, :, -2:", (4, 5, 6)) == (slice(1, 3), slice(0, 5), slice(4, 6))
    for bad in ("1:3", "a:b,:,:", "3:1,:,:", "1:2:3,:,:"):
        with pytest.raises(ValueError):
            parse_box(bad, (4, 5, 6))


@pytest.fixture
def blocks(tmp_path: Path) -> tuple[Workspace, str, np.ndarray]:
    """A dataset of two blocks and a background gap, with a ground-truth layer."""
    ws = Workspace(tmp_path / "ws")
    labels = np.zeros((16, 32, 40), dtype=np.uint32)
    labels[:, :, :18] = 4
    labels[:, :, 22:] = 8
    labels[:, 0, 0] = 99  # a small object
    image = np.where(labels > 0, 180, 40).astype(np.uint8)
    sources = {"image": array_source(image), "groundtruth": array_source(labels)}
    dataset = import_dataset(ws, "blocks", sources)
    return ws, dataset.id, labels


def test_prepare_stores_a_listed_deletable_preparation(
    blocks: tuple[Workspace, str, np.ndarray],
) -> None:
    ws, dataset_id, labels = blocks
    options = FFNPrepOptions(
        dataset=dataset_id, preset="cpu_tiny", box="1:15,2:32,:", min_size=50, thresholds=[0.5]
    )
    reports: list[tuple[int, int, str]] = []
    prepared = prepare(ws, options, "blocks-gt", lambda *a: reports.append(a), log=lambda _: None)
    assert [p.name for p in list_preparations(ws)] == ["blocks-gt"]
    assert reports[-1][:2] == (4, 4)
    info = prepared.info
    assert info["lom_radius"] == [6, 12, 12] and info["box"] == [[1, 15], [2, 32], [0, 40]]
    box_image = np.where(labels[1:15, 2:32] > 0, 180, 40)
    assert info["image_mean"] == pytest.approx(box_image.mean())
    assert info["image_std"] == pytest.approx(box_image.std())
    stored, partitions = prepared.volume()
    assert stored.shape == partitions.shape == (14, 30, 40)
    assert 99 not in stored and {4, 8} <= set(np.unique(stored).tolist())
    coordinates = np.asarray(prepared.coordinates())
    assert len(coordinates) == info["coordinates"] > 0
    # dataset frame, inside the box shrunk by the radius
    assert (coordinates >= [1 + 6, 2 + 12, 12]).all()
    assert (coordinates < [15 - 6, 32 - 12, 40 - 12]).all()
    delete_preparation(ws, "blocks-gt")
    assert list_preparations(ws) == []
    with pytest.raises(NotFound):
        get_preparation(ws, "blocks-gt")


def test_prepare_reads_the_segmentation_with_its_merges(
    blocks: tuple[Workspace, str, np.ndarray], tmp_path: Path
) -> None:
    from unem.proofread.mapping import build_index, set_segments
    from unem.volumes.datasets import get_dataset

    ws = Workspace(tmp_path / "seg")
    labels = blocks[2]
    sources = {"image": array_source(labels.astype(np.uint8)), "segmentation": array_source(labels)}
    dataset_id = import_dataset(ws, "merged", sources).id
    build_index(ws.db, dataset_id, get_dataset(ws, dataset_id).layer("segmentation"))
    set_segments(ws.db, dataset_id, {8: 4})  # a proofreader merged the two blocks
    options = FFNPrepOptions(
        dataset=dataset_id, label_layer="segmentation", preset="cpu_tiny", min_size=0
    )
    stored, _ = prepare(ws, options, "merged", log=lambda _: None).volume()
    assert set(np.unique(stored).tolist()) == {0, 4, 99}


def test_a_box_smaller_than_the_margin_is_refused(
    blocks: tuple[Workspace, str, np.ndarray],
) -> None:
    ws, dataset_id, _ = blocks
    options = FFNPrepOptions(dataset=dataset_id, preset="cpu_tiny", box="0:12,0:24,:")
    with pytest.raises(BadInput, match="y 24 ≤ 24"):
        prepare(ws, options, "small", log=lambda _: None)
