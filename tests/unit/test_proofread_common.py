"""Helpers shared by the proofreading tests, and tests of the building blocks they rest on:
boxes, voxel patches, pyramid writes and the fragment index.

The helpers compare whole states (every pyramid level, the mapping, the voxel counts) so
that each test of an edit can say "undo restored exactly what was there".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr

from unem.proofread import mapping
from unem.proofread.edits import Proofreader, forget_proofreader, proofreader
from unem.proofread.voxels import Box, VoxelPatch, write_patch
from unem.volumes.datasets import Dataset, Layer, import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

ISOTROPIC = (8.0, 8.0, 8.0)  # z is halved in the pyramid too, so every axis is strided
BRIGHT, DARK = 200, 30  # cytoplasm and membrane grey values of the synthetic images


def make_dataset(ws: Workspace, segmentation: np.ndarray, image: np.ndarray | None = None,
                 voxel_size: tuple[float, float, float] = ISOTROPIC,
                 name: str = "synthetic") -> Dataset:
    """Import a hand-made segmentation (uint32) and image (uint8) as a dataset."""
    if image is None:
        image = np.full(segmentation.shape, BRIGHT, np.uint8)
    sources = {"image": array_source(image, "test image"),
               "segmentation": array_source(segmentation.astype(np.uint32), "test labels")}
    return import_dataset(ws, name, sources, voxel_size)


def open_proofreader(ws: Workspace, dataset: Dataset) -> Proofreader:
    """The dataset's Proofreader (the one the web layer would use), indexed and recovered."""
    forget_proofreader(ws, dataset.id)
    editor = proofreader(ws, dataset.id)
    editor.ensure_ready()
    return editor


def read_levels(layer: Layer) -> list[np.ndarray]:
    return [np.asarray(zarr.open_array(str(layer.path / level.path), mode="r")[:])
            for level in layer.levels]


def labels(editor: Proofreader) -> np.ndarray:
    """Full-resolution fragment ids as stored now."""
    return read_levels(editor.layer)[0]


def segments(editor: Proofreader, fragments: np.ndarray | None = None) -> np.ndarray:
    """Segment ids of every voxel (fragments through the mapping)."""
    fragments = labels(editor) if fragments is None else fragments
    ids, inverse = np.unique(fragments, return_inverse=True)
    lookup = mapping.segments_of(editor.db, editor.dataset_id, ids.tolist())
    table = np.array([lookup[i] for i in ids.tolist()], np.int64)
    result: np.ndarray = table[inverse.reshape(fragments.shape)]
    return result


@dataclass(eq=False)
class State:
    """What a user can observe of a segmentation: voxels at every level and the mapping."""

    levels: list[np.ndarray]
    mapping: dict[int, int]  # fragments whose segment is not their own id
    counts: dict[int, int]  # voxels per fragment, fragments with none left out

    def differences(self, other: State) -> list[str]:
        found = [f"level {k} differs in {int((a != b).sum())} voxels"
                 for k, (a, b) in enumerate(zip(self.levels, other.levels, strict=True))
                 if not np.array_equal(a, b)]
        if self.mapping != other.mapping:
            found.append(f"mapping {self.mapping} != {other.mapping}")
        if self.counts != other.counts:
            found.append(f"counts {self.counts} != {other.counts}")
        return found


def snapshot(editor: Proofreader) -> State:
    rows = editor.db.execute("select fragment, voxels from fragments where dataset_id = ? "
                             "and voxels != 0", [editor.dataset_id]).fetchall()
    return State(read_levels(editor.layer),
                 mapping.non_identity_mapping(editor.db, editor.dataset_id),
                 {int(f): int(v) for f, v in rows})


def assert_same(actual: State, expected: State) -> None:
    problems = actual.differences(expected)
    assert not problems, "; ".join(problems)


def pyramid_problems(layer: Layer, levels: list[np.ndarray]) -> list[str]:
    """Levels that are not the strided full-resolution level (labels are strided)."""
    full = levels[0]
    problems = []
    for level, array in zip(layer.levels[1:], levels[1:], strict=True):
        sz, sy, sx = level.scale
        if not np.array_equal(array, full[::sz, ::sy, ::sx]):
            problems.append(f"level {level.path} is not level 0 strided by {level.scale}")
    return problems


def count_problems(editor: Proofreader) -> list[str]:
    """Where the fragments table disagrees with a fresh scan of the voxels."""
    scanned = mapping.scan_fragments(editor.layer)
    rows = editor.db.execute("select fragment, voxels, z0, y0, x0, z1, y1, x1 from fragments "
                             "where dataset_id = ?", [editor.dataset_id]).fetchall()
    table = {int(r[0]): (int(r[1]), Box.from_json(r[2:])) for r in rows}
    problems = [f"fragment {f}: {stats.voxels} voxels but no row" for f, stats in
                scanned.items() if f not in table]
    for fragment, (voxels, box) in table.items():
        real = scanned.get(fragment)
        if voxels != (real.voxels if real else 0):
            problems.append(f"fragment {fragment}: table {voxels}, scan "
                            f"{real.voxels if real else 0} voxels")
        elif real is not None and box.union(real.box) != box:
            problems.append(f"fragment {fragment}: box {box} misses voxels in {real.box}")
    return problems


def assert_consistent(editor: Proofreader) -> None:
    """Every pyramid level is the strided level 0; counts and boxes match a fresh scan."""
    problems = pyramid_problems(editor.layer, read_levels(editor.layer))
    problems += count_problems(editor)
    assert not problems, "; ".join(problems)


def chunk_files(layer: Layer) -> dict[str, tuple[int, int]]:
    """Modification time and size of every file of a layer's store."""
    return {str(p.relative_to(layer.path)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in Path(layer.path).rglob("*") if p.is_file()}


def blocks(shape: tuple[int, int, int], rows: int, cols: int) -> np.ndarray:
    """Ids 1..rows*cols in a grid of blocks across y and x, the same on every slice."""
    _, y, x = shape
    grid = (np.arange(y)[:, None] * rows // y) * cols + np.arange(x)[None, :] * cols // x + 1
    return np.broadcast_to(grid, shape).astype(np.uint32).copy()


def membranes(segmentation: np.ndarray) -> np.ndarray:
    """A synthetic EM image: bright cells, dark 1-px lines where in-plane labels change."""
    image = np.full(segmentation.shape, BRIGHT, np.uint8)
    edge = np.zeros(segmentation.shape, bool)
    edge[:, 1:, :] |= segmentation[:, 1:, :] != segmentation[:, :-1, :]
    edge[:, :, 1:] |= segmentation[:, :, 1:] != segmentation[:, :, :-1]
    image[edge] = DARK
    return image


# ---- tests of the helpers: each must be able to fail ----

@pytest.fixture
def pyramid_dataset(workspace: Workspace) -> Iterator[Dataset]:
    # 530 px along y gives three levels; odd sizes make the strided edges uneven.
    dataset = make_dataset(workspace, blocks((5, 530, 37), 4, 2))
    yield dataset
    forget_proofreader(workspace, dataset.id)


def test_the_pyramid_dataset_has_three_levels_halving_every_axis(
        pyramid_dataset: Dataset) -> None:
    layer = pyramid_dataset.layer("segmentation")
    assert [level.shape for level in layer.levels] == [(5, 530, 37), (3, 265, 19), (2, 133, 10)]
    assert not pyramid_problems(layer, read_levels(layer))


def test_pyramid_check_sees_a_stale_coarse_level(pyramid_dataset: Dataset) -> None:
    layer = pyramid_dataset.layer("segmentation")
    zarr.open_array(str(layer.path / "2"), mode="r+")[1, 5, 5] = 99
    assert pyramid_problems(layer, read_levels(layer)) == ["level 2 is not level 0 strided "
                                                           "by (4, 4, 4)"]


def test_count_check_sees_a_wrong_count(workspace: Workspace, pyramid_dataset: Dataset) -> None:
    editor = open_proofreader(workspace, pyramid_dataset)
    assert not count_problems(editor)
    workspace.db.execute("update fragments set voxels = voxels + 1 where fragment = 3")
    assert count_problems(editor) == ["fragment 3: table 12541, scan 12540 voxels"]


def test_state_comparison_sees_voxels_mapping_and_counts(workspace: Workspace,
                                                         pyramid_dataset: Dataset) -> None:
    editor = open_proofreader(workspace, pyramid_dataset)
    first = snapshot(editor)
    assert not first.differences(snapshot(editor))
    mapping.set_segments(workspace.db, editor.dataset_id, {2: 1})
    assert snapshot(editor).differences(first) == ["mapping {2: 1} != {}"]


# ---- boxes and patches ----

def test_box_around_is_clipped_to_the_volume() -> None:
    assert Box.around(0, 5, 98, (1, 3, 3), (4, 50, 100)) == Box(0, 2, 95, 2, 9, 100)
    assert Box(0, 0, 0, 1, 1, 1).union(Box(2, 3, 4, 3, 5, 6)) == Box(0, 0, 0, 3, 5, 6)
    assert Box(0, 0, 0, 2, 2, 2).intersects(Box(1, 1, 1, 3, 3, 3))
    assert not Box(0, 0, 0, 2, 2, 2).intersects(Box(2, 0, 0, 3, 2, 2))  # half-open
    assert Box(0, 5, 5, 1, 5, 9).empty
    assert Box.from_json(Box(1, 2, 3, 4, 5, 6).to_json()) == Box(1, 2, 3, 4, 5, 6)


def test_patch_round_trips_inverts_and_counts() -> None:
    before = np.array([[[1, 1, 2], [2, 2, 0]]], np.uint32)
    after = np.array([[[1, 7, 7], [2, 0, 0]]], np.uint32)
    patch = VoxelPatch(Box(3, 4, 5, 4, 6, 8), before, after)
    decoded = VoxelPatch.decode(patch.encode())
    assert decoded.box == patch.box
    np.testing.assert_array_equal(decoded.before, before)
    np.testing.assert_array_equal(decoded.after, after)
    assert decoded.after.dtype == np.uint32
    assert patch.count_deltas() == {1: -1, 2: -2, 7: 2, 0: 1}
    assert patch.inverse().count_deltas() == {1: 1, 2: 2, 7: -2, 0: -1}


def test_cropped_patch_keeps_only_the_changed_voxels() -> None:
    before = np.zeros((3, 6, 6), np.uint32)
    after = before.copy()
    after[1, 2:4, 3] = 5
    cropped = VoxelPatch(Box(10, 20, 30, 13, 26, 36), before, after).cropped()
    assert cropped.box == Box(11, 22, 33, 12, 24, 34)
    np.testing.assert_array_equal(cropped.after, [[[5], [5]]])
    unchanged = VoxelPatch(Box(0, 0, 0, 3, 6, 6), before, before)
    assert unchanged.cropped() is unchanged


@pytest.mark.parametrize("box", [Box(0, 0, 0, 5, 530, 37), Box(1, 3, 5, 4, 517, 36),
                                 Box(3, 1, 1, 4, 2, 2), Box(4, 529, 36, 5, 530, 37),
                                 Box(1, 2, 2, 2, 3, 3)])
def test_write_patch_keeps_every_level_the_strided_full_resolution(
        pyramid_dataset: Dataset, box: Box) -> None:
    layer = pyramid_dataset.layer("segmentation")
    group = zarr.open_group(str(layer.path), mode="r+")
    before = read_levels(layer)[0][box.slices]
    after = np.random.default_rng(1).integers(1, 1000, box.shape).astype(np.uint32)
    write_patch(group, layer.levels, VoxelPatch(box, before, after))
    levels = read_levels(layer)
    np.testing.assert_array_equal(levels[0][box.slices], after)
    assert not pyramid_problems(layer, levels)


# ---- the fragment index ----

def test_scan_counts_and_boxes_every_fragment(workspace: Workspace) -> None:
    volume = np.zeros((4, 20, 30), np.uint32)
    volume[1:3, 2:5, 7:9] = 4
    volume[3, 19, 29] = 9
    dataset = make_dataset(workspace, volume)
    stats = mapping.scan_fragments(dataset.layer("segmentation"))
    assert sorted(stats) == [4, 9]
    assert (stats[4].voxels, stats[4].box) == (12, Box(1, 2, 7, 3, 5, 9))
    assert (stats[9].voxels, stats[9].box) == (1, Box(3, 19, 29, 4, 20, 30))


def test_index_starts_as_identity_and_ids_are_never_reused(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, blocks((2, 16, 16), 2, 2))
    db = workspace.db
    assert not mapping.is_indexed(db, dataset.id)
    mapping.build_index(db, dataset.id, dataset.layer("segmentation"))
    assert mapping.is_indexed(db, dataset.id)
    assert mapping.segments_of(db, dataset.id, [1, 4, 0, 77]) == {0: 0, 1: 1, 4: 4, 77: 77}
    assert mapping.non_identity_mapping(db, dataset.id) == {}
    assert mapping.segment_voxels(db, dataset.id, 3) == 2 * 8 * 8
    assert mapping.segment_box(db, dataset.id, 4) == Box(0, 8, 8, 2, 16, 16)
    assert mapping.segment_box(db, dataset.id, 99) is None
    assert mapping.reserve_ids(db, dataset.id, 2) == [5, 6]
    assert mapping.reserve_ids(db, dataset.id) == [7]


def test_counts_follow_deltas_and_boxes_grow_from_empty(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, blocks((2, 16, 16), 2, 2))
    db = workspace.db
    mapping.build_index(db, dataset.id, dataset.layer("segmentation"))
    mapping.ensure_fragments(db, dataset.id, {9: 9, 0: 0})
    mapping.apply_counts(db, dataset.id, {9: 3, 1: -3}, Box(1, 2, 3, 2, 4, 6))
    rows = dict(db.execute("select fragment, voxels from fragments").fetchall())
    assert rows[9] == 3 and rows[1] == 2 * 64 - 3 and 0 not in rows
    assert mapping.segment_box(db, dataset.id, 9) == Box(1, 2, 3, 2, 4, 6)
    assert mapping.segment_box(db, dataset.id, 1) == Box(0, 0, 0, 2, 8, 8)  # only grows


def test_chunk_listing_sees_a_rewritten_chunk(pyramid_dataset: Dataset) -> None:
    layer = pyramid_dataset.layer("segmentation")
    first = chunk_files(layer)
    chunk = next(Path(layer.path).rglob("c/0/0/0"))
    os.utime(chunk, ns=(1, 1))
    assert chunk_files(layer) != first
