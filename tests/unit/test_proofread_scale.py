"""A merge costs the same for segments of 10⁷ voxels as for segments of 10³ voxels: it
changes rows of the fragment table, never a voxel."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from unem.proofread import mapping, tools
from unem.proofread.edits import Proofreader, forget_proofreader
from unem.workspace import Workspace

from .test_proofread_common import chunk_files, make_dataset, open_proofreader

SHAPE = (160, 250, 250)  # 10⁷ voxels: two halves of 5·10⁶, and two 10³-voxel cubes
MERGES, BATCHES = 5, 3


@pytest.fixture
def large(workspace: Workspace) -> Iterator[Proofreader]:
    volume = np.ones(SHAPE, np.uint32)
    volume[SHAPE[0] // 2:] = 2
    volume[10:20, 10:20, 10:20] = 3
    volume[10:20, 10:20, 40:50] = 4
    image = np.zeros(SHAPE, np.uint8)
    editor = open_proofreader(workspace, make_dataset(workspace, volume, image))
    yield editor
    forget_proofreader(workspace, editor.dataset_id)


def merge_seconds(editor: Proofreader, pair: list[int]) -> float:
    """Best time of a batch of merges of `pair`, each undone (undo too is a mapping change).

    A merge takes well under a millisecond: batches and the best of several keep timer
    noise and a busy machine out of the comparison.
    """
    batches = []
    for _ in range(BATCHES):
        start = time.perf_counter()
        for _ in range(MERGES):
            editor.commit("ann", "merge", {}, tools.merge(pair))
            editor.undo("ann")
        batches.append(time.perf_counter() - start)
    return min(batches)


def test_merge_time_does_not_depend_on_segment_size(large: Proofreader) -> None:
    db, dataset = large.db, large.dataset_id
    assert mapping.segment_voxels(db, dataset, 1) > 4_900_000
    assert mapping.segment_voxels(db, dataset, 2) == 5_000_000
    assert mapping.segment_voxels(db, dataset, 3) == 1000
    files = chunk_files(large.layer)
    merge_seconds(large, [3, 4])  # warm up caches and the statement cache
    small = merge_seconds(large, [3, 4])
    big = merge_seconds(large, [1, 2])
    assert big <= 3 * small, f"{big / MERGES * 1e3:.2f} ms vs {small / MERGES * 1e3:.2f} ms"
    assert big / MERGES < 0.1
    assert chunk_files(large.layer) == files
