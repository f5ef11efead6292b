"""Evaluation: block-wise scores equal unem.metrics on whole volumes, Dojo's mapping is
applied (a merge changes the scores as expected), semantic masks, regions, reports, CSV."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from tests.unit.test_metrics import random_labels
from unem import evaluation, evaluation_reports, metrics
from unem.demo import create_demo_dataset, generate_demo_volume
from unem.errors import BadInput, NotFound
from unem.evaluation import PairSums, evaluate, evaluate_arrays, sum_pairs
from unem.evaluation_reports import report_csv, run_evaluation
from unem.proofread import tools
from unem.proofread.edits import proofreader
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.volumes.store import open_level

DEMO_SHAPE = (6, 96, 96)


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A segmentation and a ground truth (0 on a grid of membranes) of 12 × 30 × 40."""
    rng = np.random.default_rng(3)
    gt = random_labels(rng, (12, 30, 40), 25).astype(np.uint32)
    seg = random_labels(rng, (12, 30, 40), 35).astype(np.uint64)
    gt[:, ::6] = 0
    seg[:, :, ::9] = 0  # unlabelled voxels inside ground-truth objects: singletons
    return seg, gt


def assert_same_offenders(
    found: tuple[metrics.Offender, ...], expected: tuple[metrics.Offender, ...], labels: np.ndarray
) -> None:
    assert [o.id for o in found] == [o.id for o in expected]
    for got, want in zip(found, expected, strict=True):
        assert got.voxels == want.voxels and got.partners == want.partners
        assert got.overlaps == want.overlaps
        assert got.bits == pytest.approx(want.bits, abs=1e-12)
        assert labels[got.location] == got.id  # a voxel of it (which one depends on blocks)


# Whole volume in one block; one slice per block; tiles of a slice (rows, then a part of one).
@pytest.mark.parametrize("block_voxels", [10**9, 1200, 300, 29])
def test_block_wise_scores_equal_whole_volume_metrics(pair, block_voxels: int) -> None:  # type: ignore[no-untyped-def]
    seg, gt = pair
    result = evaluate_arrays(seg, gt, block_voxels=block_voxels, offenders=6)

    rand, vi = metrics.rand_scores(seg, gt), metrics.variation_of_information(seg, gt)
    expected = {**rand.to_json(), **vi.to_json()}
    assert result.scores == pytest.approx(expected, abs=1e-12)
    assert result.voxels == int(np.count_nonzero(gt))
    assert result.objects == np.unique(gt[gt != 0]).size
    assert result.segments == np.unique(seg[(gt != 0) & (seg != 0)]).size
    per_slice = metrics.per_slice_scores(seg, gt)
    for name in evaluation_reports.INSTANCE_SCORES[:-1]:  # vi_total: not in SliceScores
        assert result.per_slice[name] == pytest.approx(list(getattr(per_slice, name)), abs=1e-12)
    assert result.per_slice["z"] == list(range(12))
    assert sum(result.per_slice["voxels"]) == result.voxels
    worst = metrics.worst_offenders(seg, gt, 6)
    assert result.offenders is not None and len(result.offenders.most_split) == 6
    assert_same_offenders(result.offenders.most_split, worst.most_split, gt)
    assert_same_offenders(result.offenders.most_merged, worst.most_merged, seg)


def test_pair_sums_reduce_in_bounded_steps_to_the_same_table(monkeypatch, pair) -> None:  # type: ignore[no-untyped-def]
    seg, gt = pair
    whole = evaluate_arrays(seg, gt, block_voxels=400)
    monkeypatch.setattr(evaluation, "REDUCE_AT", 8)  # sum after nearly every slice
    sums = PairSums()
    sums.add(sum_pairs(np.array([1, 1, 2], np.uint64), np.array([5, 5, 0], np.uint64),
                       np.array([2, 3, 4])))  # fmt: skip
    assert [a.tolist() for a in sums.total()] == [[1, 2], [5, 0], [5, 4]]
    reduced = evaluate_arrays(seg, gt, block_voxels=400)
    assert reduced.scores == pytest.approx(whole.scores, abs=1e-12)
    assert reduced.offenders == whole.offenders


def test_mapping_is_applied_to_either_side(pair) -> None:  # type: ignore[no-untyped-def]
    seg, gt = pair
    mapping = {3: 1, 4: 1, 9: 2}
    relabelled = seg.copy()
    for fragment, segment in mapping.items():
        relabelled[seg == fragment] = segment
    result = evaluate_arrays(seg, gt, segmentation_mapping=mapping, block_voxels=500)
    assert result.scores == pytest.approx(
        {**metrics.rand_scores(relabelled, gt).to_json(),
         **metrics.variation_of_information(relabelled, gt).to_json()}, abs=1e-12)  # fmt: skip
    worst = metrics.worst_offenders(relabelled, gt, 10)
    assert result.offenders is not None
    assert_same_offenders(result.offenders.most_merged, worst.most_merged, relabelled)
    swapped = evaluate_arrays(gt, seg, groundtruth_mapping=mapping, block_voxels=500)
    assert swapped.scores["vi_split"] == pytest.approx(
        metrics.variation_of_information(gt, relabelled).split, abs=1e-12
    )


def test_region_is_the_box_and_the_slices_in_it(pair) -> None:  # type: ignore[no-untyped-def]
    seg, gt = pair
    result = evaluate_arrays(seg, gt, slices="2-5,9", box=(3, 5, 6, 12, 25, 30))
    crop = (slice(None), slice(5, 25), slice(6, 30))
    planes = [3, 4, 5, 9]
    cropped_seg, cropped_gt = seg[planes][crop], gt[planes][crop]
    assert result.scores["rand_f"] == pytest.approx(
        metrics.rand_scores(cropped_seg, cropped_gt).rand_f, abs=1e-12
    )
    assert result.per_slice["z"] == planes
    assert result.offenders is not None
    for offender in result.offenders.most_split:  # locations are in the whole volume
        z, y, x = offender.location
        assert gt[z, y, x] == offender.id and z in planes and 5 <= y < 25 and 6 <= x < 30
    with pytest.raises(BadInput, match="No slice"):
        evaluate_arrays(seg, gt, slices="0-2", box=(3, 0, 0, 12, 30, 40))
    with pytest.raises(BadInput, match="leaves the volume"):
        evaluate_arrays(seg, gt, box=(0, 0, 0, 13, 30, 40))
    with pytest.raises(BadInput, match="six numbers"):
        evaluate_arrays(seg, gt, box=(0, 0, 0, 12))
    with pytest.raises(BadInput, match="same shape"):
        evaluate_arrays(seg[:5], gt)


def test_large_uint64_ids_and_empty_ground_truth() -> None:
    gt = np.zeros((2, 8, 8), np.uint64)
    gt[:, :4] = 2**60 + 1
    gt[:, 4:] = 2**63 + 5
    seg = np.where(gt == 2**60 + 1, 2**64 - 1, 7).astype(np.uint64)
    seg[1, :, :2] = 2**62  # a split on slice 1
    result = evaluate_arrays(seg, gt, block_voxels=16)
    assert result.scores == pytest.approx(
        {**metrics.rand_scores(seg, gt).to_json(),
         **metrics.variation_of_information(seg, gt).to_json()}, abs=1e-12)  # fmt: skip
    assert result.offenders is not None and result.offenders.most_split[0].id == 2**60 + 1
    empty = evaluate_arrays(seg, np.zeros_like(gt))
    assert math.isnan(empty.scores["rand_f"]) and empty.offenders == metrics.WorstOffenders((), ())
    assert empty.to_json()["scores"]["rand_f"] is None


# --- semantic mode -------------------------------------------------------------------------


def test_semantic_mode_thresholds_a_prediction_and_counts_blocks() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random((5, 20, 30)) < 0.4
    prediction = np.clip(truth * 0.7 + rng.random(truth.shape) * 0.5, 0, 1)
    as_uint8 = np.rint(prediction * 255).astype(np.uint8)
    labels = truth.astype(np.uint32) * 7  # any non-zero id is "in"
    as_float = prediction.astype(np.float32)
    for layer, expected_mask in ((as_uint8, as_uint8 / 255 >= 0.61), (as_float, as_float >= 0.61)):
        result = evaluate_arrays(layer, labels, mode="semantic", threshold=0.61, block_voxels=250)
        assert result.scores == pytest.approx(
            metrics.mask_scores(expected_mask, truth).to_json(), abs=1e-12
        )
        assert result.per_slice["dice"][2] == pytest.approx(
            metrics.mask_scores(expected_mask[2], truth[2]).dice, abs=1e-12
        )
    binary = evaluate_arrays(truth, labels, mode="semantic", threshold=None)
    assert binary.scores["jaccard"] == 1.0 and binary.scores["false_positive"] == 0
    assert binary.voxels == truth.size and binary.offenders is None


@pytest.mark.parametrize(
    ("tp", "fp", "fn"), [(0, 0, 0), (5, 0, 0), (0, 3, 0), (0, 0, 4), (3, 2, 1), (0, 2, 2)]
)
def test_mask_scores_from_counts_follow_metrics(tp: int, fp: int, fn: int) -> None:
    predicted = np.array([1] * tp + [1] * fp + [0] * fn + [0], bool)
    truth = np.array([1] * tp + [0] * fp + [1] * fn + [0], bool)
    expected = metrics.mask_scores(predicted, truth)
    assert evaluation.mask_scores_of(tp, fp, fn) == {**expected.to_json(),
                                                     "conformity": expected.conformity}  # fmt: skip


# --- datasets in a workspace: the proofread mapping, checks, reports -------------------------


def test_a_dojo_merge_of_a_split_object_removes_its_split_error(workspace) -> None:  # type: ignore[no-untyped-def]
    volume = generate_demo_volume(DEMO_SHAPE)
    dataset = create_demo_dataset(workspace, shape=DEMO_SHAPE)
    before = evaluate(workspace, dataset.id, "segmentation", "groundtruth")
    assert before.offenders is not None
    split = {o.id: o for o in before.offenders.most_split}
    assert set(volume.split_ids) <= set(split)
    merging = {o.id for o in before.offenders.most_merged}
    assert {first for first, _ in volume.merged_pairs} <= merging

    target = split[volume.split_ids[0]]
    halves = [segment for segment, _ in target.overlaps]
    assert target.partners == len(halves) == 2
    proofreader(workspace, dataset.id).commit("ann", "merge", {}, tools.merge(halves))
    after = evaluate(workspace, dataset.id, "segmentation", "groundtruth")

    assert after.offenders is not None
    assert target.id not in {o.id for o in after.offenders.most_split}
    assert after.scores["vi_split"] == pytest.approx(before.scores["vi_split"] - target.bits)
    assert after.scores["vi_merge"] == pytest.approx(before.scores["vi_merge"])  # H(T|S) kept
    assert after.scores["rand_split"] > before.scores["rand_split"]
    # the same as scoring the volume with the mapping applied (as an export writes it)
    stored = np.asarray(open_level(dataset.layer("segmentation").path)[...])
    merged = np.where(stored == halves[1], halves[0], stored)
    assert after.scores == pytest.approx(
        {**metrics.rand_scores(merged, volume.truth).to_json(),
         **metrics.variation_of_information(merged, volume.truth).to_json()},
        abs=1e-12)  # fmt: skip


def add_dataset(workspace, name: str, layers: dict[str, np.ndarray]) -> str:  # type: ignore[no-untyped-def]
    sources = {kind: array_source(array, f"{name} {kind}") for kind, array in layers.items()}
    return str(import_dataset(workspace, name, sources).id)


def test_ground_truth_of_another_dataset_and_checks(workspace) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    truth = random_labels(rng, (4, 24, 24), 9).astype(np.uint32)
    image = np.zeros(truth.shape, np.uint8)
    probability = (truth % 2 * 200).astype(np.uint8)
    layers = {"image": image, "segmentation": truth, "prediction": probability}
    mine = add_dataset(workspace, "mine", layers)
    theirs = add_dataset(workspace, "theirs", {"image": image, "groundtruth": truth})
    small = add_dataset(workspace, "small", {"image": image[:, :12], "groundtruth": truth[:, :12]})

    perfect = evaluate(workspace, mine, "segmentation", "groundtruth", groundtruth_dataset=theirs)
    assert perfect.scores["rand_f"] == 1.0 and perfect.scores["vi_total"] == 0.0
    masks = evaluate(workspace, mine, "prediction", "groundtruth", groundtruth_dataset=theirs,
                     mode="semantic", threshold=0.5)  # fmt: skip
    assert masks.scores["recall"] == pytest.approx(np.mean(truth % 2 == 1), abs=1e-12)
    assert masks.scores["precision"] == 1.0  # the ground truth has no background

    def refused(match: str, **options: object) -> None:
        arguments = {"dataset": mine, "segmentation": "segmentation", "groundtruth": "groundtruth",
                     "groundtruth_dataset": theirs, **options}  # fmt: skip
        with pytest.raises(BadInput, match=match):
            evaluation.check_evaluation(workspace, **arguments)  # type: ignore[arg-type]

    refused("a prediction layer", segmentation="prediction")
    refused("must be a label layer", groundtruth="image")
    refused("has no layer", groundtruth="nothing")
    refused("No dataset", groundtruth_dataset="nowhere")
    refused(r"is \(4, 24, 24\) but", groundtruth_dataset=small)
    refused("mode is one of", mode="panoptic")
    refused("strictly between", segmentation="prediction", mode="semantic", threshold=1.0)
    refused("outside the volume", slices="2-9")


def test_reports_are_kept_listed_exported_and_deleted(workspace) -> None:  # type: ignore[no-untyped-def]
    dataset = create_demo_dataset(workspace, shape=DEMO_SHAPE)
    options = {"dataset": dataset.id, "segmentation": "segmentation", "groundtruth": "groundtruth",
               "groundtruth_dataset": "", "mode": "instance", "threshold": 0.5, "slices": "1-4",
               "box": None, "offenders": 3}  # fmt: skip
    report = run_evaluation(workspace, options, "ann", job_id=None)
    assert report["dataset"] == report["groundtruth_dataset"] == dataset.id
    assert report["versions"] == {dataset.id: 0} and report["user"] == "ann"
    assert report["options"] == options and report["headline"] == "adapted_rand_error"
    assert len(report["offenders"]["most_split"]) == 3
    assert set(report["explanations"]) == {*evaluation_reports.INSTANCE_SCORES, "voxels"}
    assert "over-segmentation" in report["explanations"]["rand_split"]
    second = run_evaluation(workspace, {**options, "mode": "semantic"}, "bob")

    listed = evaluation_reports.list_reports(workspace)
    assert [r["id"] for r in listed] == [second["id"], report["id"]]
    assert "per_slice" not in listed[0] and listed[0]["headline"] == "dice"
    assert [r["id"] for r in evaluation_reports.list_reports(workspace, "other")] == []
    assert evaluation_reports.get_report(workspace, report["id"]) == report

    rows = list(csv.reader(io.StringIO(report_csv(report))))
    assert rows[0] == ["z", *evaluation_reports.INSTANCE_SCORES, "voxels"]
    assert rows[1][0] == "all" and float(rows[1][4]) == report["scores"]["adapted_rand_error"]
    assert int(rows[1][-1]) == report["voxels"]
    assert [row[0] for row in rows[2:]] == ["1", "2", "3", "4"]
    assert float(rows[3][6]) == report["per_slice"]["vi_merge"][1]

    evaluation_reports.delete_report(workspace, report["id"])
    with pytest.raises(NotFound):
        evaluation_reports.get_report(workspace, report["id"])
    with pytest.raises(NotFound):
        evaluation_reports.delete_report(workspace, report["id"])


def test_csv_leaves_undefined_scores_empty() -> None:
    gt = np.zeros((3, 6, 6), np.uint32)
    gt[1] = 1  # only slice 1 has ground truth
    result = evaluate_arrays(np.ones_like(gt), gt).to_json()
    report = {**result, "mode": "instance"}
    rows = list(csv.reader(io.StringIO(report_csv(report))))
    assert rows[2][1:8] == [""] * 7 and rows[3][1] == "1.0" and rows[4][1:8] == [""] * 7
