"""Crash durability: a crash between the log commit and the voxel write, a failed write, an
interrupted chunk write and a real SIGKILL all leave the dataset at a committed version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from unem.proofread import edits, tools
from unem.proofread.edits import Proofreader, forget_proofreader
from unem.proofread.voxels import VoxelPatch, write_patch
from unem.volumes.datasets import Dataset
from unem.workspace import Workspace

from .test_proofread_common import (
    assert_consistent,
    assert_same,
    blocks,
    labels,
    make_dataset,
    open_proofreader,
    read_levels,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[2]


class DiskFull(OSError):
    pass


@pytest.fixture
def dataset(workspace: Workspace) -> Iterator[Dataset]:
    made = make_dataset(workspace, blocks((4, 530, 40), 4, 2))
    yield made
    forget_proofreader(workspace, made.id)


def fresh(workspace: Workspace, dataset: Dataset) -> Proofreader:
    """A Proofreader as a restarted server would make it (nothing cached in memory)."""
    editor = Proofreader(workspace, dataset.id)
    editor.ensure_ready()
    return editor


def applied_flags(editor: Proofreader) -> list[int]:
    return [int(r[0]) for r in editor.db.execute(
        "select applied from edits where dataset_id = ? order by version",
        [editor.dataset_id]).fetchall()]


def failing_write(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise DiskFull("no space left on device")

    monkeypatch.setattr(edits, "write_patch", refuse)


def test_a_crash_between_log_commit_and_voxel_write_is_replayed(
        workspace: Workspace, dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    editor = open_proofreader(workspace, dataset)
    start = snapshot(editor)
    failing_write(monkeypatch)
    with pytest.raises(DiskFull):
        editor.commit("ann", "paint", {}, tools.paint(2, [(100, 3), (300, 35)], 5, 9))
    assert applied_flags(editor) == [0]  # committed in the log, not in the store
    for stored, old in zip(read_levels(editor.layer), start.levels, strict=True):
        np.testing.assert_array_equal(stored, old)
    monkeypatch.undo()
    restarted = fresh(workspace, dataset)
    assert applied_flags(restarted) == [1]
    patch = VoxelPatch.decode(restarted._row(1)["patch"])
    expected = start.levels[0].copy()
    expected[patch.box.slices] = patch.after
    np.testing.assert_array_equal(labels(restarted), expected)
    assert (labels(restarted)[2, 100:300, 3:35] == 9).any()
    assert_consistent(restarted)
    restarted.undo("ann")  # the replayed edit is a normal edit
    assert_same(snapshot(restarted), start)


def test_a_failed_write_is_finished_before_the_next_edit(
        workspace: Workspace, dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    editor = open_proofreader(workspace, dataset)
    first = tools.paint(1, [(100, 5), (100, 35)], 6, 9)
    second = tools.paint(1, [(90, 20), (110, 20)], 2, 10)  # crosses the first stroke
    failing_write(monkeypatch)
    with pytest.raises(DiskFull):
        editor.commit("ann", "paint", {}, first)
    monkeypatch.undo()
    editor.commit("ann", "paint", {}, second)  # same process, no restart
    assert applied_flags(editor) == [1, 1]
    painted = labels(editor)[1]
    assert painted[100, 5] == 9 and painted[100, 35] == 9 and painted[100, 20] == 10
    state = snapshot(editor)
    assert_consistent(editor)
    assert_same(snapshot(fresh(workspace, dataset)), state)  # and a restart keeps it


def test_a_store_left_at_the_old_values_is_brought_to_the_committed_state(
        workspace: Workspace, dataset: Dataset) -> None:
    editor = open_proofreader(workspace, dataset)
    editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    editor.commit("ann", "paint", {}, tools.paint(3, [(400, 3), (500, 35)], 7, 4))
    committed = snapshot(editor)
    last = editor._change_of(2).patch
    assert last is not None
    # As if the process died before its chunks were written: old values, applied = 0.
    write_patch(editor.group, editor.layer.levels, last.inverse())
    workspace.db.execute("update edits set applied = 0 where version = 2")
    assert snapshot(editor).differences(committed)
    leftover = next(Path(editor.layer.path).rglob("c/3/0/0")).with_suffix(".1234abcd.partial")
    leftover.write_bytes(b"half a chunk")
    restarted = fresh(workspace, dataset)
    assert not leftover.exists()
    assert applied_flags(restarted) == [1, 1]
    assert_same(snapshot(restarted), committed)
    assert_consistent(restarted)


def test_replay_is_idempotent_when_the_crash_came_after_the_write(
        workspace: Workspace, dataset: Dataset) -> None:
    editor = open_proofreader(workspace, dataset)
    editor.commit("ann", "paint", {}, tools.paint(0, [(10, 10)], 4, 9))
    committed = snapshot(editor)
    workspace.db.execute("update edits set applied = 0")
    assert fresh(workspace, dataset).replay_unapplied() == []  # ensure_ready did it
    workspace.db.execute("update edits set applied = 0")
    assert Proofreader(workspace, dataset.id).replay_unapplied() == [1]
    assert_same(snapshot(editor), committed)


def test_a_proofreader_indexes_itself_before_its_first_edit(
        workspace: Workspace, dataset: Dataset) -> None:
    editor = Proofreader(workspace, dataset.id)  # ensure_ready never called
    editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    editor.commit("ann", "paint", {}, tools.paint(0, [(10, 10)], 4, 0))
    assert_consistent(editor)


# ---- a real crash: SIGKILL while a process commits edits ----

WRITER = r"""
import sys
import numpy as np
from pathlib import Path
from unem.proofread import tools
from unem.proofread.edits import proofreader
from unem.workspace import Workspace

editor = proofreader(Workspace(Path(sys.argv[1])), sys.argv[2])
editor.ensure_ready()
rng = np.random.default_rng(int(sys.argv[3]))
depth, height, width = editor.layer.shape
print("ready", flush=True)
for step in range(100_000):
    z = int(rng.integers(depth))
    points = [(int(rng.integers(height)), int(rng.integers(width))) for _ in range(3)]
    colour = int(rng.integers(0, 12))
    make = tools.paint(z, points, float(rng.integers(3, 30)), colour)
    try:
        edit = editor.commit("robot", "paint", {"step": step}, make, txid=f"step-{step}")
    except Exception as error:  # a stroke that changes nothing is refused
        if "changes nothing" not in str(error):
            raise
        continue
    print(edit.version, flush=True)
"""


def run_and_kill(workspace: Workspace, dataset: Dataset, acknowledged_before_kill: int,
                 seed: int) -> list[int]:
    """Start a writer, SIGKILL it after some acknowledged edits; the versions it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    errors = workspace.root.parent / f"writer-{seed}.err"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(workspace.root), dataset.id, str(seed)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT, env=env)
    try:
        return read_until_killed(process, acknowledged_before_kill, seed, errors)
    finally:
        if process.poll() is None:  # a failed assertion must not leave the writer running
            process.kill()
            process.wait()


def read_until_killed(process: subprocess.Popen[str], count: int, seed: int,
                      errors: Path) -> list[int]:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", errors.read_text()
    acknowledged: list[int] = []
    while len(acknowledged) < count:
        line = process.stdout.readline()
        assert line, errors.read_text()
        acknowledged.append(int(line))
    time.sleep(np.random.default_rng(seed).uniform(0, 0.05))  # land somewhere in an edit
    process.send_signal(signal.SIGKILL)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, errors.read_text()
    return acknowledged + [int(v) for v in rest.split()]


def replay_log(editor: Proofreader, original: list[np.ndarray]) -> np.ndarray:
    """The original volume with every logged patch applied in order; each patch must have
    been computed from exactly the state the previous ones left."""
    volume = original[0].copy()
    for edit in editor.edits_since(0):
        patch = editor._change_of(edit.version).patch
        assert patch is not None
        np.testing.assert_array_equal(volume[patch.box.slices], patch.before,
                                      err_msg=f"version {edit.version} has a stale before")
        volume[patch.box.slices] = patch.after
    return volume


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_while_editing_loses_no_acknowledged_edit(
        workspace: Workspace, dataset: Dataset, seed: int) -> None:
    editor = open_proofreader(workspace, dataset)
    original = read_levels(editor.layer)
    forget_proofreader(workspace, dataset.id)
    acknowledged = run_and_kill(workspace, dataset, 25 + 10 * seed, seed)
    restarted = fresh(workspace, dataset)
    versions = [e.version for e in restarted.edits_since(0)]
    assert versions == list(range(1, len(versions) + 1))
    assert set(acknowledged) <= set(versions)
    assert len(versions) <= len(acknowledged) + 1  # at most the edit being committed
    assert set(applied_flags(restarted)) == {1}
    np.testing.assert_array_equal(labels(restarted), replay_log(restarted, original))
    assert not list(Path(restarted.layer.path).rglob("*.partial"))
    assert_consistent(restarted)
    # and editing goes on from there
    restarted.commit("ann", "paint", {}, tools.paint(0, [(5, 5)], 3, 77))
    assert restarted.version() == len(versions) + 1
