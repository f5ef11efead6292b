"""Edits from several threads, and other writers of the same database meanwhile."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from unem.proofread import tools
from unem.proofread.edits import Proofreader, forget_proofreader, proofreader
from unem.workspace import Workspace

from .test_proofread_common import (
    assert_consistent,
    blocks,
    labels,
    make_dataset,
    open_proofreader,
    read_levels,
)


@pytest.fixture
def editor(workspace: Workspace) -> Iterator[Proofreader]:
    opened = open_proofreader(workspace, make_dataset(workspace, blocks((4, 300, 64), 4, 2)))
    yield opened
    forget_proofreader(workspace, opened.dataset_id)


def test_another_writer_between_reading_and_writing_does_not_fail_the_edit(
        workspace: Workspace, editor: Proofreader, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another connection (a job's progress, a mark) writes while an edit is committing:
    the edit must wait for it or make it wait, never fail with "database is locked"."""
    other: list[threading.Thread] = []
    read_version = Proofreader.version

    def version_then_other_writer(self: Proofreader) -> int:
        current = read_version(self)
        if self.db.conn.in_transaction and not other:
            thread = threading.Thread(target=write_elsewhere, args=(workspace,))
            other.append(thread)
            thread.start()
            thread.join(timeout=1)  # it gets through at once unless the edit holds the lock
        return current

    monkeypatch.setattr(Proofreader, "version", version_then_other_writer)
    edit = editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    other[0].join(timeout=30)
    assert edit.version == 1 and not other[0].is_alive()
    assert workspace.db.execute("select count(*) from marks").fetchone()[0] == 1


def write_elsewhere(workspace: Workspace) -> None:
    conn = sqlite3.connect(workspace.root / "unem.sqlite", timeout=30, isolation_level=None)
    conn.execute("insert into marks (dataset_id, z, y, x, note) values ('x', 0, 0, 0, 'n')")
    conn.close()


def test_edits_from_several_threads_are_serialised_in_version_order(
        workspace: Workspace, editor: Proofreader) -> None:
    original = read_levels(editor.layer)[0]
    shared = proofreader(workspace, editor.dataset_id)
    assert shared is editor  # one Proofreader per dataset in a process
    failures: list[BaseException] = []

    def paint_many(user: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for step in range(12):
                points = [(int(rng.integers(300)), int(rng.integers(64))) for _ in range(2)]
                make = tools.paint(int(rng.integers(4)), points, 6, int(rng.integers(1, 12)))
                try:
                    shared.commit(user, "paint", {}, make, txid=f"{user}-{step}")
                except Exception as error:
                    if "changes nothing" not in str(error):
                        raise
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=paint_many, args=(name, seed))
               for seed, name in enumerate(("ann", "bob", "cy"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    log = editor.edits_since(0)
    assert [e.version for e in log] == list(range(1, len(log) + 1)) and len(log) > 20
    volume = original.copy()
    for edit in log:
        patch = editor._change_of(edit.version).patch
        assert patch is not None
        np.testing.assert_array_equal(volume[patch.box.slices], patch.before)
        volume[patch.box.slices] = patch.after
    np.testing.assert_array_equal(labels(editor), volume)
    assert_consistent(editor)
