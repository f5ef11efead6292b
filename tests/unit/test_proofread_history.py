"""The edit log as users see it: per-user undo/redo (CAVE-like), refusals that name the other
user, locks, stale-version conflicts, idempotent retries, revert, and a history that is
only ever appended to."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from unem.errors import BadInput, Conflict, Forbidden
from unem.proofread import tools
from unem.proofread.edits import Proofreader, forget_proofreader
from unem.workspace import Workspace

from .test_proofread_common import (
    assert_consistent,
    assert_same,
    blocks,
    labels,
    make_dataset,
    membranes,
    open_proofreader,
    snapshot,
)

# Segments 1..16 in a 4×4 grid of 30×30 blocks on every slice.
SHAPE = (3, 120, 120)


def centre(segment: int) -> tuple[int, int]:
    row, col = divmod(segment - 1, 4)
    return 30 * row + 15, 30 * col + 15


def dab(segment: int, colour: int, z: int = 1, radius: float = 3) -> tools.ChangeMaker:
    """Paint `colour` at the centre of `segment`'s block (touching that segment only)."""
    return tools.paint(z, [centre(segment)], radius, colour)


@pytest.fixture
def editor(workspace: Workspace) -> Iterator[Proofreader]:
    volume = blocks(SHAPE, 4, 4)
    opened = open_proofreader(workspace, make_dataset(workspace, volume, membranes(volume)))
    yield opened
    forget_proofreader(workspace, opened.dataset_id)


def rows(editor: Proofreader) -> list[dict[str, object]]:
    return [dict(r) for r in editor.db["edits"].rows_where(
        "dataset_id = ?", [editor.dataset_id], order_by="version")]


# ---- undo and redo, per user ----

def test_undo_takes_back_only_the_users_own_last_edit(editor: Proofreader) -> None:
    start = snapshot(editor)
    ann = editor.commit("ann", "paint", {}, dab(1, 25))
    after_ann = snapshot(editor)
    editor.commit("bob", "paint", {}, dab(16, 26))
    after_bob = snapshot(editor)
    undo = editor.undo("ann")
    assert (undo.user, undo.undo_of) == ("ann", ann.version)
    expected = after_bob.levels[0].copy()
    expected[after_ann.levels[0] != start.levels[0]] = 1
    np.testing.assert_array_equal(labels(editor), expected)  # bob's dab is still there
    editor.undo("bob")
    assert_same(snapshot(editor), start)
    assert_consistent(editor)
    with pytest.raises(BadInput, match="Nothing to undo"):
        editor.undo("ann")
    with pytest.raises(BadInput, match="Nothing to undo"):
        editor.undo("carl")


def test_undo_walks_back_a_users_edits_as_a_stack(editor: Proofreader) -> None:
    states = [snapshot(editor)]
    for segment in (1, 2, 3):
        editor.commit("ann", "paint", {}, dab(segment, 9))
        states.append(snapshot(editor))
    editor.commit("ann", "merge", {}, tools.merge([4, 8]))
    states.append(snapshot(editor))
    for expected in reversed(states[:-1]):
        editor.undo("ann")
        assert_same(snapshot(editor), expected)
    for expected in states[1:]:
        editor.redo("ann")
        assert_same(snapshot(editor), expected)
    with pytest.raises(BadInput, match="Nothing to redo"):
        editor.redo("ann")
    assert_consistent(editor)


def test_undo_is_refused_when_another_user_touched_the_same_segment(
        editor: Proofreader) -> None:
    editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    bob = editor.commit("bob", "paint", {}, dab(2, 7))  # paints in the merged segment 1
    before = snapshot(editor)
    with pytest.raises(Conflict, match="bob changed the same segments") as refused:
        editor.undo("ann")
    assert refused.value.detail == {"version": bob.version, "user": "bob"}
    assert_same(snapshot(editor), before)
    assert editor.version() == bob.version


def test_undo_is_refused_when_another_user_touched_the_same_voxels(
        editor: Proofreader) -> None:
    ann = editor.commit("ann", "paint", {}, tools.paint(1, [(15, 15), (15, 40)], 3, 11))
    editor.commit("bob", "paint", {}, tools.paint(1, [(10, 38), (20, 38)], 1, 12))
    with pytest.raises(Conflict, match="bob") as refused:
        editor.undo("ann")
    assert refused.value.detail["user"] == "bob"  # type: ignore[index]
    assert editor.edit(ann.version).undone_by is None


def test_undo_is_allowed_again_once_the_other_user_undid_their_edit(
        editor: Proofreader) -> None:
    start = snapshot(editor)
    editor.commit("ann", "paint", {}, tools.paint(1, [(15, 15), (15, 40)], 3, 11))
    editor.commit("bob", "paint", {}, tools.paint(1, [(10, 38), (20, 38)], 1, 12))
    with pytest.raises(Conflict):
        editor.undo("ann")
    editor.undo("bob")
    editor.undo("ann")  # bob's edit and its undo cancel out: nothing of bob's is in the way
    assert_same(snapshot(editor), start)
    # Bob's edit was made over ann's paint: redoing it now would bring part of it back.
    with pytest.raises(Conflict, match="Cannot redo: ann changed"):
        editor.redo("bob")
    editor.redo("ann")
    editor.redo("bob")  # ann's undo and redo cancel out
    with pytest.raises(Conflict, match="bob"):
        editor.undo("ann")  # bob's redo is in effect over ann's voxels again
    editor.undo("bob")
    editor.undo("ann")  # bob's edit, undo, redo and undo cancel out
    assert_same(snapshot(editor), start)
    assert_consistent(editor)


def test_an_undo_redo_chain_of_another_user_counts_by_its_parity(editor: Proofreader) -> None:
    editor.commit("ann", "paint", {}, dab(1, 20))
    editor.commit("bob", "paint", {}, dab(1, 21, radius=5))  # over ann's paint
    editor.undo("bob")
    editor.redo("bob")
    editor.undo("bob")
    editor.undo("ann")  # bob: edit, undo, redo, undo: nothing left in effect
    editor.redo("ann")
    editor.commit("carl", "paint", {}, dab(16, 22))
    editor.undo("ann")  # ann's undo and redo cancel; carl's edit is elsewhere
    assert_consistent(editor)


def test_a_redone_edit_of_another_user_still_blocks(editor: Proofreader) -> None:
    editor.commit("ann", "paint", {}, dab(1, 20))
    editor.commit("bob", "paint", {}, dab(1, 21, radius=5))
    editor.undo("bob")
    editor.redo("bob")
    with pytest.raises(Conflict, match="bob"):
        editor.undo("ann")


def test_edits_of_other_users_elsewhere_do_not_block_undo_or_redo(editor: Proofreader) -> None:
    ann = editor.commit("ann", "paint", {}, dab(1, 20))
    after_ann = snapshot(editor)
    editor.undo("ann")
    editor.commit("bob", "merge", {}, tools.merge([15, 16]))
    editor.commit("bob", "paint", {}, dab(10, 22))
    redo = editor.redo("ann")  # another user's new edit does not empty ann's redo stack
    assert redo.payload == {"of": ann.version}
    np.testing.assert_array_equal(labels(editor)[1, :30, :30], after_ann.levels[0][1, :30, :30])
    assert_consistent(editor)


def test_a_new_edit_empties_the_users_redo_stack(editor: Proofreader) -> None:
    editor.commit("ann", "paint", {}, dab(1, 20))
    editor.undo("ann")
    editor.commit("ann", "paint", {}, dab(2, 20))
    with pytest.raises(BadInput, match="Nothing to redo"):
        editor.redo("ann")
    editor.undo("ann")
    editor.redo("ann")  # the stack holds the undo made after the new edit


def test_history_is_only_appended_to(editor: Proofreader) -> None:
    first = editor.commit("ann", "paint", {"why": "test"}, dab(1, 20))
    editor.commit("bob", "merge", {}, tools.merge([5, 6]))
    frozen = [{k: v for k, v in row.items() if k not in ("undone_by", "redone_by")}
              for row in rows(editor)]
    undo = editor.undo("ann")
    redo = editor.redo("ann")
    undo_again = editor.undo("ann")
    log = rows(editor)
    assert [r["version"] for r in log] == [1, 2, 3, 4, 5]
    assert [{k: v for k, v in row.items() if k not in ("undone_by", "redone_by")}
            for row in log[:2]] == frozen  # nothing earlier was rewritten
    assert [(r["kind"], r["undo_of"]) for r in log] == [
        ("paint", None), ("merge", None), ("undo", 1), ("redo", 3), ("undo", 4)]
    assert editor.edit(first.version).undone_by == undo.version
    assert editor.edit(undo.version).redone_by == redo.version
    assert editor.edit(redo.version).undone_by == undo_again.version
    assert [e.version for e in editor.edits_since(2)] == [3, 4, 5]
    assert editor.edits_since(2, limit=1)[0].to_json()["undo_of"] == 1
    assert all(r["applied"] == 1 for r in log)


def test_undo_and_redo_retries_with_the_same_txid_apply_once(editor: Proofreader) -> None:
    editor.commit("ann", "paint", {}, dab(1, 20))
    editor.commit("ann", "paint", {}, dab(2, 20))
    first = editor.undo("ann", txid="u-1")
    again = editor.undo("ann", txid="u-1")
    assert again.version == first.version and editor.version() == first.version
    assert editor.redo("ann", txid="r-1").version == editor.redo("ann", txid="r-1").version
    assert editor.version() == first.version + 1


# ---- locks ----

def test_an_edit_touching_a_segment_locked_by_another_user_is_refused(
        editor: Proofreader) -> None:
    editor.set_lock("ann", 6, True)
    assert editor.locks() == {6: "ann"}
    refused = [dab(6, 20), tools.merge([1, 6]), tools.merge([6, 1]), tools.paint(
        1, [(45, 0), (45, 119)], 2, 0), tools.fill(1, *centre(6), 3), tools.cut(
        6, [(1, 35, 35)], [(1, 55, 55)])]
    before = snapshot(editor)
    for make in refused:
        with pytest.raises(Forbidden, match="Segment 6 is locked by ann") as error:
            editor.commit("bob", "edit", {}, make)
        assert error.value.detail == {"segment": 6, "locked_by": "ann"}
    assert editor.version() == 0
    assert_same(snapshot(editor), before)
    editor.commit("bob", "paint", {}, dab(7, 20))  # other segments stay editable
    editor.commit("bob", "paint", {}, tools.paint(1, [(45, 0), (45, 119)], 2, 0, only_on=5))
    editor.commit("ann", "paint", {}, dab(6, 21))  # and the owner edits as before
    editor.commit("ann", "merge", {}, tools.merge([6, 2]))
    assert editor.version() == 4


def test_undo_of_an_edit_on_a_segment_locked_since_is_refused(editor: Proofreader) -> None:
    editor.commit("bob", "merge", {}, tools.merge([6, 7]))
    editor.set_lock("ann", 6, True)
    with pytest.raises(Forbidden, match="locked by ann"):
        editor.undo("bob")
    editor.set_lock("ann", 6, False)
    editor.undo("bob")
    assert snapshot(editor).mapping == {}


def test_only_the_owner_or_an_admin_unlocks(editor: Proofreader) -> None:
    editor.set_lock("ann", 6, True)
    with pytest.raises(Forbidden, match="locked by ann"):
        editor.set_lock("bob", 6, False)
    with pytest.raises(Forbidden, match="locked by ann"):
        editor.set_lock("bob", 6, True)  # nor take it over
    assert editor.locks() == {6: "ann"}
    editor.set_lock("root", 6, False, is_admin=True)
    assert editor.locks() == {}
    editor.set_lock("bob", 6, True)
    editor.set_lock("bob", 6, False)
    assert editor.locks() == {}


# ---- stale versions and retries ----

def test_a_stale_base_version_conflicts_when_the_segments_changed_since(
        editor: Proofreader) -> None:
    seen = editor.version()
    bob = editor.commit("bob", "merge", {}, tools.merge([1, 2]))
    with pytest.raises(Conflict, match="bob changed segment 1") as refused:
        editor.commit("ann", "paint", {}, dab(1, 20), base_version=seen)
    assert refused.value.detail == {"version": bob.version, "user": "bob"}
    with pytest.raises(Conflict, match="bob changed"):
        editor.commit("ann", "merge", {}, tools.merge([2, 3]), base_version=seen)
    assert editor.version() == bob.version
    editor.commit("ann", "paint", {}, dab(1, 20), base_version=bob.version)  # up to date
    editor.commit("ann", "merge", {}, tools.merge([9, 10]), base_version=seen)  # elsewhere


def test_a_stale_base_version_conflicts_on_the_same_voxels(editor: Proofreader) -> None:
    editor.commit("bob", "erase", {}, tools.paint(1, [(15, 5), (15, 20)], 2, 0))
    # ann paints a new segment where bob erased: no segment in common, the same voxels
    with pytest.raises(Conflict, match="bob changed the voxels you edited"):
        editor.commit("ann", "paint", {}, tools.paint(1, [(15, 10)], 1, 31), base_version=0)


def test_a_users_own_later_edits_never_conflict(editor: Proofreader) -> None:
    editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    editor.commit("ann", "paint", {}, dab(1, 20), base_version=0)
    assert editor.version() == 2


def test_a_retry_with_the_same_txid_returns_the_same_edit_and_applies_once(
        editor: Proofreader) -> None:
    first = editor.commit("ann", "paint", {}, dab(1, 20), txid="tx-1")
    after = snapshot(editor)
    again = editor.commit("ann", "paint", {}, dab(1, 20), txid="tx-1")
    other = editor.commit("ann", "paint", {}, dab(2, 20, radius=5), txid="tx-1")
    assert again == first and other == first
    assert editor.version() == first.version
    assert_same(snapshot(editor), after)
    assert len(rows(editor)) == 1


def test_txids_are_per_dataset(workspace: Workspace, editor: Proofreader) -> None:
    volume = blocks(SHAPE, 4, 4)
    second = open_proofreader(workspace, make_dataset(workspace, volume, name="second"))
    try:
        editor.commit("ann", "paint", {}, dab(1, 20), txid="same")
        assert second.commit("ann", "paint", {}, dab(1, 20), txid="same").version == 1
        assert second.version() == 1
    finally:
        forget_proofreader(workspace, second.dataset_id)


# ---- revert ----

def test_revert_to_a_version_is_a_new_edit_restoring_that_state(editor: Proofreader) -> None:
    states = {0: snapshot(editor)}
    makers = [dab(1, 20), tools.merge([2, 3]), tools.paint(1, [(15, 10), (75, 100)], 4, 0),
              tools.fill(2, 45, 45, 40), tools.merge([20, 2]), tools.cut(
                  9, [(1, 65, 5)], [(1, 85, 25)], margin=8)]
    for index, make in enumerate(makers):
        edit = editor.commit(["ann", "bob"][index % 2], "edit", {}, make)
        states[edit.version] = snapshot(editor)
    editor.undo("ann")
    states[editor.version()] = snapshot(editor)
    last = editor.version()
    for target in (4, 2, 0):
        revert = editor.revert_to("carl", target)
        assert (revert.kind, revert.payload) == ("revert", {"to": target})
        assert_same(snapshot(editor), states[target])
        assert_consistent(editor)
        editor.undo("carl")  # a revert is an edit like any other
        assert_same(snapshot(editor), states[last])
    assert editor.version() == last + 6


def test_revert_refuses_the_current_or_a_future_version(editor: Proofreader) -> None:
    with pytest.raises(BadInput, match="not before the current one"):
        editor.revert_to("ann", 0)
    editor.commit("ann", "paint", {}, dab(1, 20))
    for version in (1, 2, -1):
        with pytest.raises(BadInput, match="not before the current one"):
            editor.revert_to("ann", version)


def test_revert_respects_locks(editor: Proofreader) -> None:
    editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    editor.set_lock("bob", 1, True)
    with pytest.raises(Forbidden, match="locked by bob"):
        editor.revert_to("ann", 0)
    editor.revert_to("bob", 0)
