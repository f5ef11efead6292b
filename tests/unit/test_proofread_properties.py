"""Property tests: random edits by one to three users, then undoing them all (each user their
own, newest first) or reverting to version 0, give back the original volume and mapping
exactly; reverting to any version gives back what was observed at that version."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unem.errors import BadInput, Conflict, Forbidden
from unem.proofread import tools
from unem.proofread.edits import ChangeMaker, Proofreader, forget_proofreader
from unem.workspace import Workspace

from .test_proofread_common import (
    State,
    assert_consistent,
    assert_same,
    blocks,
    make_dataset,
    membranes,
    open_proofreader,
    snapshot,
)

# 6 × 2 blocks of 45 × 24 voxels (segments 1-12) on 3 slices; 270 rows make a second,
# strided pyramid level (z is halved too: the voxels are isotropic).
SHAPE = (3, 270, 48)
ROWS, COLS = 6, 2
FRESH = 13  # a segment id no voxel has yet
USERS = ("ann", "bob", "cy")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """An indexed workspace holding the synthetic dataset, copied for every example."""
    root = tmp_path_factory.mktemp("template") / "ws"
    ws = Workspace(root)
    volume = blocks(SHAPE, ROWS, COLS)
    noise = np.random.default_rng(0).integers(0, 12, SHAPE).astype(np.uint8)
    dataset = make_dataset(ws, volume, membranes(volume) + noise)
    open_proofreader(ws, dataset)
    forget_proofreader(ws, dataset.id)
    ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    yield root, dataset.id


def block_of(segment: int) -> tuple[int, int]:
    """Top-left corner of the block of an original segment."""
    row, col = divmod(segment - 1, COLS)
    return row * SHAPE[1] // ROWS, col * SHAPE[2] // COLS


points = st.tuples(st.integers(-3, SHAPE[1] + 2), st.integers(-3, SHAPE[2] + 2))
slices = st.integers(0, SHAPE[0] - 1)
colours = st.integers(0, FRESH)
users = st.integers(0, len(USERS) - 1)

merges = st.tuples(st.just("merge"), users, st.lists(st.integers(1, 12), min_size=2,
                                                     max_size=3))
paints = st.tuples(st.just("paint"), users, slices, st.lists(points, min_size=1, max_size=3),
                   st.integers(0, 6), colours, st.none() | st.integers(0, FRESH))
fills = st.tuples(st.just("fill"), users, slices, points, colours, st.integers(0, 1),
                  st.integers(5, 80))
cuts = st.tuples(st.just("cut"), users, st.integers(1, 12), slices, slices,
                 st.tuples(st.integers(0, 44), st.integers(0, 23)),
                 st.tuples(st.integers(0, 44), st.integers(0, 23)))
undos = st.tuples(st.sampled_from(["undo", "redo"]), users)
operations = st.lists(st.one_of(merges, paints, paints, fills, cuts, undos), min_size=1,
                      max_size=9)


def tool(op: tuple[Any, ...], shape: tuple[int, int, int]) -> ChangeMaker:
    kind = op[0]
    if kind == "merge":
        return tools.merge(op[2])
    if kind == "paint":
        _, _, z, stroke, radius, colour, only_on = op
        return tools.paint(z, stroke, radius, colour, only_on=only_on)
    if kind == "fill":
        _, _, z, (y, x), colour, depth, radius = op
        return tools.fill(z, min(max(y, 0), shape[1] - 1), min(max(x, 0), shape[2] - 1),
                          colour, depth=depth, radius=radius)
    _, _, segment, za, zb, (ya, xa), (yb, xb) = op
    y0, x0 = block_of(segment)
    return tools.cut(segment, [(za, y0 + ya, x0 + xa)], [(zb, y0 + yb, x0 + xb)], margin=12)


def run(editor: Proofreader, op: tuple[Any, ...], user: str) -> bool:
    """Apply one operation; False if it was refused (and then nothing may have changed)."""
    before = editor.version()
    try:
        if op[0] == "undo":
            editor.undo(user)
        elif op[0] == "redo":
            editor.redo(user)
        else:
            editor.commit(user, op[0], {}, tool(op, editor.layer.shape))
    except (BadInput, Conflict, Forbidden):
        assert editor.version() == before
        return False
    assert editor.version() == before + 1
    return True


def last_undoable(editor: Proofreader, user: str) -> int:
    row = editor.db.execute(
        "select max(version) from edits where dataset_id = ? and user = ? and kind != 'undo' "
        "and undone_by is null", [editor.dataset_id, user]).fetchone()
    return int(row[0] or 0)


def undo_everything(editor: Proofreader, names: list[str]) -> None:
    """Each user undoes their own edits, the newest edit of anyone first."""
    while True:
        version, user = max((last_undoable(editor, name), name) for name in names)
        if version == 0:
            return
        undo = editor.undo(user)
        assert undo.undo_of == version


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=operations, user_count=st.integers(1, 3), data=st.data(),
       finish=st.sampled_from(["undo", "revert"]))
def test_random_edits_are_undone_exactly(template: tuple[Path, str], ops: list[tuple[Any, ...]],
                                         user_count: int, data: st.DataObject,
                                         finish: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "ws"
        shutil.copytree(template[0], root)
        ws = Workspace(root)
        editor = open_proofreader(ws, _dataset(ws, template[1]))
        try:
            check_history(editor, ops, user_count, data, finish)
        finally:
            forget_proofreader(ws, editor.dataset_id)


def _dataset(ws: Workspace, dataset_id: str) -> Any:
    from unem.volumes.datasets import get_dataset

    return get_dataset(ws, dataset_id)


def check_history(editor: Proofreader, ops: list[tuple[Any, ...]], user_count: int,
                  data: st.DataObject, finish: str) -> None:
    names = list(USERS[:user_count])
    states: dict[int, State] = {0: snapshot(editor)}
    for op in ops:
        before = states[editor.version()]
        if run(editor, op, names[op[1] % user_count]):
            states[editor.version()] = snapshot(editor)
            assert_consistent(editor)
        else:
            assert_same(snapshot(editor), before)
    current = editor.version()
    if current > 0:
        target = data.draw(st.integers(0, current - 1), label="revert to")
        if revert(editor, target, states[current], states[target]):
            editor.undo("rev")
            assert_same(snapshot(editor), states[current])
    if finish == "revert" and editor.version() > 0:
        revert(editor, 0, snapshot(editor), states[0])
    else:
        undo_everything(editor, [*names, "rev"])
    assert_same(snapshot(editor), states[0])
    assert_consistent(editor)


def revert(editor: Proofreader, target: int, now: State, then: State) -> bool:
    """Revert to `target` and check the state; a revert that would change nothing is refused."""
    if not now.differences(then):
        with pytest.raises(BadInput, match="changes nothing"):
            editor.revert_to("rev", target)
        return False
    editor.revert_to("rev", target)
    assert_same(snapshot(editor), then)
    assert_consistent(editor)
    return True
