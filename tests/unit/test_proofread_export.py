"""Exports show the segmentation as proofread: merges applied, painted voxels included."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unem.demo import create_demo_dataset
from unem.proofread import tools
from unem.proofread.edits import proofreader
from unem.proofread.exporting import export_current
from unem.volumes.store import open_level


def test_export_applies_the_mapping_and_voxel_edits(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset = create_demo_dataset(workspace, shape=(6, 96, 96))
    stored = np.asarray(open_level(dataset.layer("segmentation").path)[...])
    a, b = (int(i) for i in np.unique(stored)[1:3])
    editor = proofreader(workspace, dataset.id)
    editor.commit("ann", "merge", {}, tools.merge([a, b]))
    editor.commit("ann", "paint", {}, tools.paint(2, [(40, 40)], 3, a))

    exported = export_current(workspace, dataset.id, "segmentation", "npz", tmp_path / "s.npz")

    with np.load(exported) as archive:
        labels = archive["stack"]
    expected = np.where(stored == b, a, stored)
    expected[2, 37:44, 37:44] = np.where(
        (np.arange(37, 44)[:, None] - 40) ** 2 + (np.arange(37, 44)[None, :] - 40) ** 2 <= 9,
        a, expected[2, 37:44, 37:44])
    assert np.array_equal(labels, expected)
    assert b not in np.unique(labels)


def test_export_of_other_layers_is_untouched(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset = create_demo_dataset(workspace, shape=(4, 64, 64))
    truth = np.asarray(open_level(dataset.layer("groundtruth").path)[...])
    stored = np.asarray(open_level(dataset.layer("segmentation").path)[...])
    a, b = (int(i) for i in np.unique(stored)[1:3])
    proofreader(workspace, dataset.id).commit("ann", "merge", {}, tools.merge([a, b]))
    exported = export_current(workspace, dataset.id, "groundtruth", "npy", tmp_path / "g.npy")
    assert np.array_equal(np.load(exported), truth)
