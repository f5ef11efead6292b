"""Every edit tool on hand-made volumes: what it changes, what it refuses, and that undo
restores every pyramid level and the mapping exactly while redo re-applies the edit."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from unem.errors import BadInput
from unem.proofread import mapping, tools
from unem.proofread.edits import ChangeMaker, Edit, Proofreader, forget_proofreader
from unem.workspace import Workspace

from .test_proofread_common import (
    DARK,
    State,
    assert_consistent,
    assert_same,
    blocks,
    chunk_files,
    labels,
    make_dataset,
    membranes,
    open_proofreader,
    segments,
    snapshot,
)


@pytest.fixture
def editors(workspace: Workspace) -> Iterator[list[Proofreader]]:
    """Proofreaders opened by a test, forgotten afterwards."""
    opened: list[Proofreader] = []
    yield opened
    for editor in opened:
        forget_proofreader(workspace, editor.dataset_id)


def open_volume(workspace: Workspace, editors: list[Proofreader], volume: np.ndarray,
                image: np.ndarray | None = None) -> Proofreader:
    editor = open_proofreader(workspace, make_dataset(workspace, volume, image))
    editors.append(editor)
    return editor


def edit_undo_redo(editor: Proofreader, make: ChangeMaker, user: str = "ann"
                   ) -> tuple[State, State, Edit]:
    """Commit an edit, undo it, redo it, checking the state and the index at each step."""
    before = snapshot(editor)
    edit = editor.commit(user, "edit", {}, make)
    assert_consistent(editor)
    after = snapshot(editor)
    assert after.differences(before), "the edit changed nothing"
    undo = editor.undo(user)
    assert (undo.kind, undo.undo_of) == ("undo", edit.version)
    assert_same(snapshot(editor), before)
    assert_consistent(editor)
    redo = editor.redo(user)
    assert (redo.kind, redo.undo_of) == ("redo", undo.version)
    assert_same(snapshot(editor), after)
    assert_consistent(editor)
    return before, after, edit


def capsule(shape: tuple[int, int], y: float, x0: float, x1: float, radius: float) -> np.ndarray:
    """Pixels within `radius` of the horizontal segment from (y, x0) to (y, x1)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dx = np.maximum(np.maximum(x0 - xx, 0), xx - x1)
    mask: np.ndarray = (yy - y) ** 2 + dx**2 <= radius**2
    return mask


# ---- merge ----

def test_merge_changes_only_the_mapping_and_rewrites_no_voxel(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((5, 530, 37), 4, 2))
    files = chunk_files(editor.layer)
    voxels = labels(editor)
    _, after, edit = edit_undo_redo(editor, tools.merge([3, 5, 8]))
    assert after.mapping == {5: 3, 8: 3}
    assert edit.mapping == {5: (5, 3), 8: (8, 3)}
    assert (edit.box, edit.segments) == (None, (3, 5, 8))
    assert chunk_files(editor.layer) == files  # no chunk written, not even rewritten
    np.testing.assert_array_equal(labels(editor), voxels)
    assert set(np.unique(segments(editor)).tolist()) == {1, 2, 3, 4, 6, 7}
    assert mapping.segment_voxels(editor.db, editor.dataset_id, 3) == sum(
        int((voxels == s).sum()) for s in (3, 5, 8))
    assert mapping.segment_box(editor.db, editor.dataset_id, 3) == mapping.Box(0, 133, 0,
                                                                               5, 530, 37)


def test_merging_a_merged_segment_moves_all_its_fragments(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((2, 40, 40), 2, 2))
    editor.commit("ann", "merge", {}, tools.merge([2, 1]))
    _, after, edit = edit_undo_redo(editor, tools.merge([4, 2]))
    assert after.mapping == {1: 4, 2: 4}
    assert edit.mapping == {1: (2, 4), 2: (2, 4)}


@pytest.mark.parametrize(("ids", "message"), [
    ([1], "at least 2 different"), ([2, 2], "at least 2 different"),
    ([1, 0], "non-zero"), ([1, 99], "Segment 99 does not exist"),
    ([99, 1], "Segment 99 does not exist"),
])
def test_merge_refuses_fewer_than_two_real_segments(
        workspace: Workspace, editors: list[Proofreader], ids: list[int], message: str) -> None:
    editor = open_volume(workspace, editors, blocks((2, 40, 40), 2, 2))
    with pytest.raises(BadInput, match=message):
        editor.commit("ann", "merge", {}, tools.merge(ids))
    assert editor.version() == 0 and snapshot(editor).mapping == {}


# ---- split by fragments ----

def fragment_chain() -> np.ndarray:
    """Fragments 1-6 in a chain of bands along y; 8 hangs off 5; 9 touches 6 only across z;
    7 touches nothing."""
    volume = np.zeros((2, 60, 40), np.uint32)
    for index in range(6):
        volume[:, 10 * index:10 * index + 10, :30] = index + 1
    volume[:, 40:50, 30:40] = 8
    volume[:, 0:5, 35:40] = 7
    volume[0, 50:60, 30:40] = 6
    volume[1, 52:58, 33:38] = 9
    return volume


def test_split_fragments_assigns_each_fragment_to_the_nearest_seed_group(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, fragment_chain())
    editor.commit("ann", "merge", {}, tools.merge(list(range(1, 10))))
    files = chunk_files(editor.layer)
    _, after, edit = edit_undo_redo(editor, tools.split_fragments(1, [1], [6]))
    new = edit.mapping[6][1]
    assert new > 9
    side_b = {f for f, s in after.mapping.items() if s == new}
    assert side_b == {4, 5, 6, 8, 9}
    assert mapping.fragments_of(editor.db, editor.dataset_id, 1) == [1, 2, 3, 7]
    assert edit.mapping == {f: (1, new) for f in side_b}
    assert chunk_files(editor.layer) == files


def test_split_fragments_with_several_seeds_per_side(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, fragment_chain())
    editor.commit("ann", "merge", {}, tools.merge(list(range(1, 10))))
    edit = editor.commit("ann", "split", {}, tools.split_fragments(1, [1, 8], [3]))
    new = edit.mapping[3][1]
    # 2 is one step from 1 and from 3: a tie goes to the first group; 4 is nearer 3 than 8.
    assert {f for f, (_, s) in edit.mapping.items() if s == new} == {3, 4}


@pytest.mark.parametrize(("a", "b"), [([1], []), ([1], [1]), ([1], [42]), ([1, 2], [2])])
def test_split_fragments_refuses_bad_seed_groups(
        workspace: Workspace, editors: list[Proofreader], a: list[int], b: list[int]) -> None:
    editor = open_volume(workspace, editors, fragment_chain())
    editor.commit("ann", "merge", {}, tools.merge(list(range(1, 10))))
    with pytest.raises(BadInput, match="two separate groups"):
        editor.commit("ann", "split", {}, tools.split_fragments(1, a, b))
    assert editor.version() == 1


def test_painting_a_segment_whose_own_fragment_left_it_writes_a_new_fragment(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, fragment_chain())
    editor.commit("ann", "merge", {}, tools.merge([1, 2, 3, 4, 5, 6]))
    split = editor.commit("ann", "split", {}, tools.split_fragments(1, [6], [1]))
    assert split.mapping[1][1] != 1  # fragment 1 now belongs to the new segment
    _, after, edit = edit_undo_redo(editor, tools.paint(0, [(45, 10)], 2, 1))
    (fragment, (own, segment)), = edit.mapping.items()
    assert (own, segment) == (fragment, 1) and fragment not in range(10)
    painted = labels(editor)[0, 43:48, 8:13]
    assert set(np.unique(painted).tolist()) == {fragment, 5}
    assert after.mapping[fragment] == 1


# ---- paint and erase ----

def test_paint_rasterises_the_stroke_at_full_resolution(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((5, 530, 37), 4, 2))
    original = labels(editor)
    _, after, edit = edit_undo_redo(editor, tools.paint(2, [(100, 5), (100, 30)], 6, 3))
    expected = original.copy()
    expected[2][capsule((530, 37), 100, 5, 30, 6)] = 3
    np.testing.assert_array_equal(after.levels[0], expected)
    assert edit.box == tools.Box(2, 94, 0, 3, 107, 37)
    assert set(edit.segments) == {1, 2, 3}
    # The brush is 13 voxels wide at full resolution whatever level is shown; the coarser
    # levels show every second or fourth of those voxels.
    assert int((after.levels[0][2, :, 20] == 3).sum()) == 13
    assert int((after.levels[1][1, :, 10] == 3).sum()) in (6, 7)


def test_paint_follows_a_polyline_and_paints_a_new_segment(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((5, 530, 37), 4, 2))
    original = labels(editor)
    points = [(10, 3), (400, 30), (500, 5)]
    _, after, _ = edit_undo_redo(editor, tools.paint(4, points, 2.5, 50))
    painted = (after.levels[0] != original)[4]
    assert painted.any() and not (after.levels[0] != original)[:4].any()
    assert set(np.unique(after.levels[0][4][painted]).tolist()) == {50}
    yy, xx = np.nonzero(painted)
    distances = np.min([segment_distance(yy, xx, a, b)
                        for a, b in itertools.pairwise(points)], axis=0)
    assert distances.max() <= 3.0  # nothing far from the line
    yy, xx = np.mgrid[:530, :37]
    near = np.min([segment_distance(yy, xx, a, b)
                   for a, b in itertools.pairwise(points)], axis=0) <= 1.5
    assert (after.levels[0][4][near] == 50).all()  # and the line itself is covered
    assert mapping.segment_voxels(editor.db, editor.dataset_id, 50) == int(painted.sum())


def segment_distance(yy: np.ndarray, xx: np.ndarray, a: tuple[int, int],
                     b: tuple[int, int]) -> np.ndarray:
    (ay, ax), (by, bx) = a, b
    t = np.clip(((yy - ay) * (by - ay) + (xx - ax) * (bx - ax))
                / ((by - ay) ** 2 + (bx - ax) ** 2), 0, 1)
    distance: np.ndarray = np.hypot(yy - (ay + t * (by - ay)), xx - (ax + t * (bx - ax)))
    return distance


def test_a_stroke_just_outside_the_volume_paints_what_it_reaches(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((2, 40, 40), 2, 2))
    original = labels(editor)
    _, after, _ = edit_undo_redo(editor, tools.paint(1, [(-2, 5), (-2, 30)], 4, 9))
    expected = original.copy()
    expected[1][capsule((40, 40), -2, 5, 30, 4)] = 9
    np.testing.assert_array_equal(after.levels[0], expected)
    assert (after.levels[0][1, :3, 5:31] == 9).all()


def test_erase_clears_voxels_and_only_on_limits_it_to_one_segment(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((3, 60, 60), 2, 2))
    original = labels(editor)
    stroke = [(15, 0), (15, 59)]  # across segments 1 and 2
    _, after, edit = edit_undo_redo(editor, tools.paint(1, stroke, 3, 0, only_on=2))
    band = capsule((60, 60), 15, 0, 59, 3)
    expected = original.copy()
    expected[1][band & (original[1] == 2)] = 0
    np.testing.assert_array_equal(after.levels[0], expected)
    assert edit.segments == (2,)
    editor.commit("ann", "erase", {}, tools.paint(1, stroke, 3, 0))
    assert (labels(editor)[1][band] == 0).all()
    assert_consistent(editor)


def test_only_on_a_merged_segment_covers_all_its_fragments(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((3, 60, 60), 2, 2))
    editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    stroke = [(30, 0), (30, 59)]  # across 1, 2 (merged) and the border of 3, 4
    _, after, _ = edit_undo_redo(editor, tools.paint(0, stroke, 4, 7, only_on=1))
    band = capsule((60, 60), 30, 0, 59, 4)
    painted = after.levels[0][0] == 7
    np.testing.assert_array_equal(painted, band & (np.arange(60)[:, None] < 30))


@pytest.mark.parametrize(("args", "message"), [
    ((1, [], 3.0, 1), "at least one point"),
    ((1, [(5, 5)], -1.0, 1), "between 0 and 512"),
    ((1, [(5, 5)], 600.0, 1), "between 0 and 512"),
])
def test_paint_refuses_bad_strokes_at_once(args: tuple[int, list[tuple[int, int]], float, int],
                                           message: str) -> None:
    with pytest.raises(BadInput, match=message):
        tools.paint(*args)


@pytest.mark.parametrize(("z", "points", "message"), [
    (1, [(-50, 5), (-50, 30)], "outside the volume"),
    (7, [(5, 5)], "Slice 7 is outside"),
    (1, [(5, 5), (10**9, 5)], "far outside"),
])
def test_paint_refuses_strokes_outside_the_volume(
        workspace: Workspace, editors: list[Proofreader], z: int,
        points: list[tuple[int, int]], message: str) -> None:
    editor = open_volume(workspace, editors, blocks((2, 40, 40), 2, 2))
    with pytest.raises(BadInput, match=message):
        editor.commit("ann", "paint", {}, tools.paint(z, points, 3, 1))
    assert editor.version() == 0


@pytest.mark.parametrize("segment", [-1, 2**32])
def test_paint_and_fill_refuse_ids_the_layer_cannot_hold(
        workspace: Workspace, editors: list[Proofreader], segment: int) -> None:
    editor = open_volume(workspace, editors, blocks((2, 40, 40), 2, 2))  # uint32 voxels
    for make in (tools.paint(0, [(5, 5)], 3, segment), tools.fill(0, 5, 5, segment)):
        with pytest.raises(BadInput, match="Segment ids of this layer go from 0 to 4294967295"):
            editor.commit("ann", "edit", {}, make)
    assert editor.version() == 0


def test_painting_what_is_already_there_changes_nothing(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, blocks((2, 40, 40), 2, 2))
    with pytest.raises(BadInput, match="changes nothing"):
        editor.commit("ann", "paint", {}, tools.paint(0, [(5, 5)], 3, 1))
    assert editor.version() == 0


# ---- fill ----

def rings() -> np.ndarray:
    """Square walls on every slice: 3 closed, 4 with a gap, 7 closed except on slice 3;
    5 an L-shaped wall that closes the bottom-left corner with the volume's edges."""
    volume = np.zeros((5, 300, 80), np.uint32)
    for segment, top in ((3, 20), (4, 80), (7, 140)):
        volume[:, top:top + 40, 20:60] = segment
        volume[:, top + 2:top + 38, 22:58] = 0
    volume[:, 80:82, 40:43] = 0  # the gap of 4
    volume[3, 140:142, 40:43] = 0  # 7 is open on slice 3 only
    volume[:, 200:202, 0:32] = 5
    volume[:, 202:, 30:32] = 5
    return volume


def test_fill_2d_fills_a_closed_contour(workspace: Workspace,
                                       editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, rings())
    original = labels(editor)
    _, after, edit = edit_undo_redo(editor, tools.fill(2, 40, 40, 3, radius=100))
    expected = original.copy()
    expected[2, 22:58, 22:58] = 3
    np.testing.assert_array_equal(after.levels[0], expected)
    assert edit.box == tools.Box(2, 22, 22, 3, 58, 58)  # the patch is cut to what changed
    assert mapping.segment_voxels(editor.db, editor.dataset_id, 3) == int(
        (expected == 3).sum())


def test_fill_refuses_an_open_region_with_a_message(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, rings())
    with pytest.raises(BadInput, match="not closed"):
        editor.commit("ann", "fill", {}, tools.fill(2, 100, 40, 4, radius=30))
    assert editor.version() == 0
    assert_consistent(editor)


def test_fill_may_close_a_region_with_the_volume_edges(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, rings())
    original = labels(editor)
    _, after, _ = edit_undo_redo(editor, tools.fill(1, 250, 10, 6, radius=100))
    expected = original.copy()
    expected[1, 202:, :30] = 6
    np.testing.assert_array_equal(after.levels[0], expected)


@pytest.mark.parametrize(("depth", "slices"), [(0, [2]), (1, [1, 2, 3]), (9, [0, 1, 2, 3, 4])])
def test_fill_3d_is_bounded_to_depth_slices_around_the_click(
        workspace: Workspace, editors: list[Proofreader], depth: int, slices: list[int]) -> None:
    editor = open_volume(workspace, editors, rings())
    original = labels(editor)
    _, after, _ = edit_undo_redo(editor, tools.fill(2, 40, 40, 8, depth=depth, radius=60))
    expected = original.copy()
    expected[slices, 22:58, 22:58] = 8
    np.testing.assert_array_equal(after.levels[0], expected)


def test_fill_3d_refuses_a_region_that_leaks_on_another_slice(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, rings())
    with pytest.raises(BadInput, match="not closed"):
        editor.commit("ann", "fill", {}, tools.fill(2, 160, 40, 7, depth=1, radius=60))
    assert editor.version() == 0
    editor.commit("ann", "fill", {}, tools.fill(1, 160, 40, 7, depth=1, radius=60))
    assert (labels(editor)[:3, 142:178, 22:58] == 7).all()
    assert (labels(editor)[3:, 142:178, 22:58] == 0).all()


def test_fill_on_a_segment_replaces_its_connected_part(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    editor = open_volume(workspace, editors, rings())
    original = labels(editor)
    _, after, _ = edit_undo_redo(editor, tools.fill(0, 20, 30, 9))
    expected = original.copy()
    expected[0][original[0] == 3] = 9
    np.testing.assert_array_equal(after.levels[0], expected)


@pytest.mark.parametrize(("click", "message"), [((5, 1, 1), "outside the volume"),
                                                ((0, 300, 1), "outside the volume")])
def test_fill_refuses_a_click_outside_the_volume(
        workspace: Workspace, editors: list[Proofreader], click: tuple[int, int, int],
        message: str) -> None:
    editor = open_volume(workspace, editors, rings())
    with pytest.raises(BadInput, match=message):
        editor.commit("ann", "fill", {}, tools.fill(*click, 3))


# ---- cut (seeded watershed inside one segment) ----

def membrane_row(x: np.ndarray | int, centre: int, amplitude: float = 3.0) -> np.ndarray:
    return np.asarray(centre + np.round(amplitude * np.sin(np.asarray(x) / 5.0))).astype(int)


def merged_cells(rows: tuple[int, int] = (50, 250), membrane_at: int = 150,
                 noise: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Segment 7 spans two cells (a merge error): the image shows a wavy dark membrane
    between them, which the segmentation ignores."""
    volume = np.ones((5, 300, 64), np.uint32)
    volume[:, rows[0]:rows[1]] = 7
    volume[:, rows[1]:] = 2
    image = membranes(volume)
    xs = np.arange(64)
    image[:, membrane_row(xs, membrane_at), xs] = DARK
    rng = np.random.default_rng(0)
    noisy = image.astype(int) + rng.integers(-noise, noise + 1, image.shape)
    return volume, np.clip(noisy, 0, 255).astype(np.uint8)


def boundary_rows(new_side: np.ndarray) -> np.ndarray:
    """First row of the new side in each column of a 2D mask."""
    return np.argmax(new_side, axis=0)


def test_cut_2d_follows_the_membrane_inside_the_segment(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    volume, image = merged_cells()
    editor = open_volume(workspace, editors, volume, image)
    _, after, edit = edit_undo_redo(editor, tools.cut(7, [(2, 120, 30)], [(2, 180, 30)]))
    changed = after.levels[0] != volume
    assert changed[2].any() and not changed[[0, 1, 3, 4]].any()
    new = int(np.unique(after.levels[0][changed])[0])
    assert np.unique(after.levels[0][changed]).tolist() == [new] and new > 7
    side = after.levels[0][2] == new
    assert not side[:, 63].any()  # the box is the seeds ± the margin (32)
    rows = boundary_rows(side[:, :63])
    membrane = membrane_row(np.arange(63), 150)
    assert np.all((rows >= membrane) & (rows <= membrane + 1)), rows - membrane
    assert (side[: 150 - 4].sum(), side[213:].sum()) == (0, 0)
    assert np.all(side[160:213, :63])
    assert edit.segments == (7, new)


def test_cut_3d_splits_the_slices_between_the_seeds(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    volume, image = merged_cells()
    editor = open_volume(workspace, editors, volume, image)
    _, after, _ = edit_undo_redo(
        editor, tools.cut(7, [(1, 120, 30), (3, 110, 10)], [(3, 180, 30)], margin=40))
    changed = after.levels[0] != volume
    assert [bool(changed[z].any()) for z in range(5)] == [False, True, True, True, False]
    membrane = membrane_row(np.arange(63), 150)
    for z in (1, 2, 3):
        rows = boundary_rows(changed[z][:, :63])
        assert np.all((rows >= membrane) & (rows <= membrane + 1)), (z, rows - membrane)


def test_cut_of_a_merged_segment_crosses_its_fragments(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    volume, image = merged_cells()
    volume[:, 150:250, 32:] = 8  # segment 7 was two fragments, split another way
    editor = open_volume(workspace, editors, volume, image)
    editor.commit("ann", "merge", {}, tools.merge([7, 8]))
    _, after, _ = edit_undo_redo(editor, tools.cut(7, [(2, 120, 30)], [(2, 180, 30)]))
    assert set(np.unique(volume[after.levels[0] != volume]).tolist()) == {7, 8}


@pytest.mark.parametrize(("segment", "a", "b", "message"), [
    (7, [(2, 20, 30)], [(2, 180, 30)], "not inside the segment"),
    (7, [(2, 120, 30)], [(2, 280, 30)], "not inside the segment"),
    (7, [(2, 120, 30)], [(2, 120, 30)], "on both sides"),
    (7, [(2, 120, 30)], [(9, 180, 30)], "outside the volume"),
    (7, [(2, 120, 30)], [(2, 180, -1)], "outside the volume"),
])
def test_cut_refuses_seeds_outside_the_segment(
        workspace: Workspace, editors: list[Proofreader], segment: int,
        a: list[tuple[int, int, int]], b: list[tuple[int, int, int]], message: str) -> None:
    volume, image = merged_cells()
    editor = open_volume(workspace, editors, volume, image)
    with pytest.raises(BadInput, match=message):
        editor.commit("ann", "cut", {}, tools.cut(segment, a, b))
    assert editor.version() == 0


def test_cut_refuses_missing_seeds_and_the_background() -> None:
    with pytest.raises(BadInput, match="both sides"):
        tools.cut(7, [(2, 120, 30)], [])
    with pytest.raises(BadInput, match="not the background"):
        tools.cut(0, [(2, 120, 30)], [(2, 180, 30)])


def test_cut_between_separate_parts_splits_off_the_part_of_b(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    volume, image = merged_cells()
    volume[:, 148:153] = 1  # the segment is already in two parts on these slices
    editor = open_volume(workspace, editors, volume, image)
    _, after, _ = edit_undo_redo(editor, tools.cut(7, [(2, 120, 30)], [(2, 180, 30)]))
    changed = after.levels[0] != volume
    np.testing.assert_array_equal(np.argwhere(changed[2]).min(axis=0), [153, 0])
    assert changed[2, 153:213, :63].all() and int(changed.sum()) == 60 * 63


# ---- split along a line ----

def line_volume(with_membrane: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Segment 5: a narrow block (rows 100-200, columns 20-44) inside segment 1, with a
    dark wavy membrane near row 160, and a larger separate part (rows 215-290) on the
    same slices; rows 290-300 are background."""
    volume = np.ones((3, 300, 64), np.uint32)
    volume[:, 100:200, 20:44] = 5
    volume[:, 215:290, 20:44] = 5
    volume[:, 290:] = 0
    image = membranes(volume)
    if with_membrane:
        xs = np.arange(20, 44)
        image[:, membrane_row(xs, 160, 2.0), xs] = DARK
    return volume, image


def test_split_line_cuts_the_crossed_segment_along_the_membrane(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    volume, image = line_volume()
    editor = open_volume(workspace, editors, volume, image)
    line = [(163, 0), (163, 63)]  # drawn near the membrane, across 1, 5, 1
    _, after, edit = edit_undo_redo(editor, tools.split_line(1, line))
    changed = after.levels[0] != volume
    assert not changed[[0, 2]].any()
    new = int(np.unique(after.levels[0][changed])[0])
    assert set(np.unique(volume[changed]).tolist()) == {5}  # not segment 1
    assert not changed[1, 200:].any()  # the part the line does not touch is left alone
    side = changed[1][:, 20:44]
    rows = boundary_rows(side)
    membrane = membrane_row(np.arange(20, 44), 160, 2.0)
    assert np.all((rows >= membrane) & (rows <= membrane + 1)), rows - membrane
    assert np.all(side[170:200]) and not side[:155].any()
    assert edit.segments == (5, new)


def test_split_line_without_a_membrane_cuts_inside_the_band(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    volume, image = line_volume(with_membrane=False)
    editor = open_volume(workspace, editors, volume, image)
    edit_undo_redo(editor, tools.split_line(1, [(163, 0), (163, 63)], band=4))
    side = (labels(editor) != volume)[1][:, 20:44]
    rows = boundary_rows(side)
    assert np.all((rows >= 163 - 5) & (rows <= 163 + 5)), rows
    assert side[168:200].all() and not side[:158].any()


def test_split_line_of_a_named_segment(workspace: Workspace,
                                       editors: list[Proofreader]) -> None:
    volume, image = line_volume()
    editor = open_volume(workspace, editors, volume, image)
    editor.commit("ann", "split", {}, tools.split_line(1, [(40, 0), (40, 63)], segment=1))
    changed = labels(editor) != volume
    assert set(np.unique(volume[changed]).tolist()) == {1}
    assert changed[1, :36].all() and not changed[1, 45:].any()


@pytest.mark.parametrize(("line", "message"), [
    ([(163, 0), (163, 30)], "from one side to the other"),  # ends inside segment 5
    ([(295, 0), (295, 63)], "does not cross any segment"),
    ([(163, 0)], "Draw a line"),
])
def test_split_line_refuses_a_line_that_does_not_cross(
        workspace: Workspace, editors: list[Proofreader], line: list[tuple[int, int]],
        message: str) -> None:
    volume, image = line_volume()
    editor = open_volume(workspace, editors, volume, image)
    with pytest.raises(BadInput, match=message):
        editor.commit("ann", "split", {}, tools.split_line(1, line))
    assert editor.version() == 0


def test_preview_computes_a_split_without_committing_it(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    volume, image = line_volume()
    editor = open_volume(workspace, editors, volume, image)
    files = chunk_files(editor.layer)
    change = editor.preview(tools.split_line(1, [(163, 0), (163, 63)]))
    assert change.patch is not None and change.patch.changed.sum() > 0
    assert editor.version() == 0 and chunk_files(editor.layer) == files


def test_split_line_on_the_demo_volume_recovers_a_merged_pair(
        workspace: Workspace, editors: list[Proofreader]) -> None:
    from unem.demo import generate_demo_volume

    demo = generate_demo_volume((4, 192, 192), seed=2)
    editor = open_volume(workspace, editors, demo.segmentation, demo.image)
    z, first, second, line = demo_boundary_line(demo.segmentation, demo.truth,
                                                demo.merged_pairs)
    editor.commit("ann", "split", {}, tools.split_line(z, line, band=6, segment=first))
    after = labels(editor)[z]
    new = after != demo.segmentation[z]
    truth = demo.truth[z]
    merged = demo.segmentation[z] == first
    a_side, b_side = merged & ~new, merged & new
    agree = max(int((a_side & (truth == first)).sum() + (b_side & (truth == second)).sum()),
                int((a_side & (truth == second)).sum() + (b_side & (truth == first)).sum()))
    assert agree >= 0.97 * int(merged.sum())


def demo_boundary_line(segmentation: np.ndarray, truth: np.ndarray,
                       pairs: list[tuple[int, int]]) -> tuple[int, int, int, list[tuple[int, int]]]:
    """A straight line through the contact of a merged pair, long enough to cross it."""
    best: tuple[int, int, int, int, np.ndarray] | None = None
    for first, second in pairs:
        for z in range(segmentation.shape[0]):
            a, b = truth[z] == first, truth[z] == second
            contact = (a[1:] & b[:-1]) | (a[:-1] & b[1:])
            count = int(contact.sum())
            if best is None or count > best[0]:
                best = (count, z, first, second, np.argwhere(contact).astype(float))
    assert best is not None
    _, z, first, second, points = best
    centre = points.mean(axis=0)
    direction = np.linalg.svd(points - centre)[2][0]
    ends = [centre + t * direction for t in (-400, 400)]
    line = [(round(float(p[0])), round(float(p[1]))) for p in ends]
    return z, first, second, line
