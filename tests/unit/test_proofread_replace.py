"""Replacing a dataset's segmentation: the old one is kept as a layer, the proofreading state
is archived and reset, the new one is indexed; a lock refuses it and nothing changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlite_utils import Database

from tests.unit.test_proofread_common import (
    assert_consistent,
    blocks,
    make_dataset,
    open_proofreader,
    read_levels,
)
from unem.errors import BadInput, Conflict
from unem.proofread import tools
from unem.proofread.edits import forget_proofreader, proofreader
from unem.proofread.replace import replace_segmentation
from unem.proofread.segments import rename_segment, segment_table
from unem.volumes.datasets import Dataset, get_dataset
from unem.workspace import Workspace

SHAPE = (4, 40, 60)


@pytest.fixture
def dataset(workspace: Workspace) -> Iterator[Dataset]:
    made = make_dataset(workspace, blocks(SHAPE, 2, 3))  # fragments 1..6 on every slice
    yield made
    forget_proofreader(workspace, made.id)


def stripes() -> np.ndarray:
    """The new segmentation: 5 horizontal bands per slice, each slice its own ids."""
    new = np.zeros(SHAPE, np.uint32)
    for z in range(SHAPE[0]):
        for band in range(5):
            new[z, band * 8 : band * 8 + 7] = 100 + 10 * z + band
    return new


def folder_listing(ws: Workspace, dataset: Dataset) -> list[str]:
    return sorted(p.name for p in ws.dataset_dir(dataset.id).iterdir())


def rows(ws: Workspace, table: str, dataset: Dataset) -> list[dict[str, object]]:
    return [dict(r) for r in ws.db[table].rows_where("dataset_id = ?", [dataset.id])]


def test_the_old_segmentation_is_kept_and_the_new_one_is_ready_to_proofread(
    workspace: Workspace, dataset: Dataset
) -> None:
    editor = open_proofreader(workspace, dataset)
    before = read_levels(editor.layer)
    editor.commit("ann", "paint", {}, tools.paint(1, [(5, 5)], 2, 3))  # voxels, no mapping
    rename_segment(workspace.db, dataset.id, 2, "axon")
    painted = read_levels(editor.layer)
    assert not np.array_equal(painted[0], before[0])

    done = replace_segmentation(workspace, dataset.id, iter(stripes()), "test stripes", "bob")

    assert done.kept.startswith("segmentation-before-") and done.version == 2
    after = get_dataset(workspace, dataset.id)
    kept = after.layer(done.kept)
    assert (kept.kind, kept.dtype) == ("segmentation", "uint32")
    for old_level, kept_level in zip(painted, read_levels(kept), strict=True):
        assert np.array_equal(old_level, kept_level)  # the same voxels, every level
    assert np.array_equal(read_levels(after.layer("segmentation"))[0], stripes())
    # The proofreading state is the new volume's: one edit, an identity index, no names.
    edits = rows(workspace, "edits", dataset)
    assert [(e["version"], e["kind"], e["user"]) for e in edits] == [(2, "replace", "bob")]
    payload = json.loads(str(edits[0]["payload"]))
    assert payload == {
        "kept": done.kept,
        "archive": done.archive,
        "source": "test stripes",
        "fragments": 20,
    }
    assert json.loads(str(edits[0]["box"])) == [0, 0, 0, *SHAPE]
    assert rows(workspace, "segments", dataset) == []
    fresh = proofreader(workspace, dataset.id)
    assert fresh is not editor and fresh.version() == 2
    assert_consistent(fresh)
    table, total = segment_table(workspace.db, dataset.id)
    assert total == 20 and {r.segment for r in table} == set(np.unique(stripes())) - {0}
    assert (
        workspace.db.execute(
            "select next_id from proofread_state where dataset_id = ?", [dataset.id]
        ).fetchone()[0]
        == 135
    )
    # Everything before is in the archive beside the kept layer.
    archive = Database(workspace.dataset_dir(dataset.id) / done.archive)
    assert [r["kind"] for r in archive["edits"].rows] == ["paint"]
    assert [r["name"] for r in archive["segments"].rows if r["name"]] == ["axon"]
    assert archive["fragments"].count == 6 and archive["proofread_state"].count == 1
    archive.conn.close()
    assert sorted(folder_listing(workspace, dataset)) == sorted(
        ["image.zarr", "segmentation.zarr", f"{done.kept}.zarr", done.archive]
    )
    assert list((workspace.root / "tmp").iterdir()) == []


def test_edits_work_on_the_new_segmentation_and_history_before_it_is_closed(
    workspace: Workspace, dataset: Dataset
) -> None:
    editor = open_proofreader(workspace, dataset)
    editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    replace_segmentation(workspace, dataset.id, iter(stripes()), "test stripes", "ann")
    with pytest.raises(Conflict, match="replaced"):  # an instance opened before: refused
        editor.commit("ann", "merge", {}, tools.merge([100, 101]))
    fresh = proofreader(workspace, dataset.id)
    with pytest.raises(BadInput, match="Nothing to undo"):
        fresh.undo("ann")  # neither the replacement nor the archived merge
    merged = fresh.commit("ann", "merge", {}, tools.merge([100, 101]), base_version=2)
    assert merged.version == 3 and fresh.edits_since(0)[0].kind == "replace"
    paint = fresh.commit("ann", "paint", {}, tools.paint(0, [(3, 3)], 1, 102))
    assert_consistent(fresh)
    assert fresh.undo("ann").undo_of == paint.version
    with pytest.raises(BadInput, match="replaced at version 2"):
        fresh.revert_to("ann", 1)
    assert fresh.revert_to("ann", 2).kind == "revert"


def test_merges_are_applied_in_the_kept_layer_at_every_level(workspace: Workspace) -> None:
    shape = (3, 300, 20)  # two pyramid levels
    dataset = make_dataset(workspace, blocks(shape, 3, 2), name="tall")
    editor = open_proofreader(workspace, dataset)
    editor.commit("ann", "merge", {}, tools.merge([1, 2, 4]))
    done = replace_segmentation(workspace, dataset.id, iter(np.ones(shape, np.uint8)), "ones")
    kept = read_levels(get_dataset(workspace, dataset.id).layer(done.kept))
    expected = blocks(shape, 3, 2)
    expected[np.isin(expected, [2, 4])] = 1
    assert len(kept) == 2 and np.array_equal(kept[0], expected)
    assert np.array_equal(kept[1], expected[::2, ::2, ::2])  # isotropic: z halves too
    archive = Database(workspace.dataset_dir(dataset.id) / done.archive)
    assert {r["fragment"]: r["segment"] for r in archive["fragments"].rows}[4] == 1
    archive.conn.close()
    forget_proofreader(workspace, dataset.id)


def test_a_lock_refuses_the_replacement_naming_its_owner(
    workspace: Workspace, dataset: Dataset
) -> None:
    editor = open_proofreader(workspace, dataset)
    editor.set_lock("carol", 3, True)
    layers = rows(workspace, "layers", dataset)
    files = folder_listing(workspace, dataset)
    with pytest.raises(Conflict, match=r"Segment 3 of .* is locked by carol") as refused:
        replace_segmentation(workspace, dataset.id, iter(stripes()), "test stripes")
    assert refused.value.detail == {"locked": {"3": "carol"}}
    assert rows(workspace, "layers", dataset) == layers
    assert folder_listing(workspace, dataset) == files
    assert rows(workspace, "edits", dataset) == [] and proofreader(workspace, dataset.id) is editor
    assert np.array_equal(read_levels(editor.layer)[0], blocks(SHAPE, 2, 3))


def test_a_lock_taken_while_writing_still_refuses(workspace: Workspace, dataset: Dataset) -> None:
    editor = open_proofreader(workspace, dataset)

    def planes() -> Iterator[np.ndarray]:
        yield from stripes()[:2]
        editor.set_lock("dave", 5, True)  # while the job writes
        yield from stripes()[2:]

    with pytest.raises(Conflict, match="locked by dave"):
        replace_segmentation(workspace, dataset.id, planes(), "test stripes")
    assert "segmentation-before" not in " ".join(folder_listing(workspace, dataset))
    assert list((workspace.root / "tmp").iterdir()) == []


def test_an_edit_while_writing_is_kept_too(workspace: Workspace, dataset: Dataset) -> None:
    editor = open_proofreader(workspace, dataset)

    def planes() -> Iterator[np.ndarray]:
        yield from stripes()[:2]
        editor.commit("ann", "merge", {}, tools.merge([5, 6]))
        yield from stripes()[2:]

    done = replace_segmentation(workspace, dataset.id, planes(), "test stripes")
    kept = read_levels(get_dataset(workspace, dataset.id).layer(done.kept))[0]
    assert 6 not in kept and done.version == 2


@pytest.mark.parametrize(
    ("planes", "message"),
    [
        (lambda: iter(stripes()[:3]), "3 slices for a dataset of 4"),
        (lambda: iter(np.zeros((5, 40, 60), np.uint32)), "More slices"),
        (lambda: iter(np.zeros((4, 40, 61), np.uint32)), "Slice 0 is"),
        (lambda: iter(np.full((4, 40, 60), -1, np.int64)), "ids must lie"),
        (lambda: iter(np.zeros((4, 40, 60), np.float32)), "integers"),
    ],
)
def test_bad_planes_change_nothing(
    workspace: Workspace, dataset: Dataset, planes: object, message: str
) -> None:
    files = folder_listing(workspace, dataset)
    with pytest.raises(BadInput, match=message):
        replace_segmentation(workspace, dataset.id, planes(), "bad")  # type: ignore[operator]
    assert folder_listing(workspace, dataset) == files
    assert get_dataset(workspace, dataset.id).layers.keys() == dataset.layers.keys()
    assert list(Path(workspace.root / "tmp").iterdir()) == []
