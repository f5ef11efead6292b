"""FFN inference: consensus, the passes with checkpoints and resume (fake models), a real
Keras FFN end to end, and the `ffn-infer` job through the real job manager into Dojo."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.unit.test_ffn_canvas import assert_same_partition, cells, oracle
from unem.ffn.canvas import CanvasSettings, Predict
from unem.ffn.inference import Checkpoints, Runner, Segmented, choose_seeds, split_consensus
from unem.ffn.policies import grid_seeds

SETTINGS = CanvasSettings(fov=(5, 9, 9), deltas=(1, 3, 3), min_segment_size=10)


def test_split_consensus_gives_each_agreeing_piece_an_id() -> None:
    forward = np.array([1, 1, 1, 1, 2, 2, 0, 0], np.uint64).reshape(2, 2, 2)
    reverse = np.array([3, 3, 4, 4, 4, 0, 5, 0], np.uint64).reshape(2, 2, 2)
    # pairs (1,3) (1,3) (1,4) (1,4) (2,4) (2,0): numbered in pair order
    assert split_consensus(forward, reverse, 1).ravel().tolist() == [1, 1, 2, 2, 4, 3, 0, 0]
    assert split_consensus(forward, reverse, 2).ravel().tolist() == [1, 1, 2, 2, 0, 0, 0, 0]
    assert split_consensus(forward, forward, 1).ravel().tolist() == [1, 1, 1, 1, 2, 2, 0, 0]
    assert forward.ravel().tolist() == [1, 1, 1, 1, 2, 2, 0, 0]  # inputs untouched


def runner(predict: Predict, tmp: Path | None = None, consensus: bool = False) -> Runner:
    image = cells(wall=2).astype(np.float32)
    checkpoints = Checkpoints(tmp, "run-a", seconds=0) if tmp is not None else None
    return Runner(image, SETTINGS, predict, consensus, 10, checkpoints)


def forward_seeds() -> np.ndarray:
    return grid_seeds((16, 40, 40), (3, 5, 5), (2, 4, 4))[::-1].copy()


def test_forward_and_reverse_passes_and_their_consensus() -> None:
    labels = cells(wall=2)
    reports: list[tuple[int, int, str, dict[str, float]]] = []
    run = runner(oracle(leak=2), consensus=True)
    run.report = lambda *args: reports.append(args)
    result = run.run(forward_seeds)
    assert np.array_equal(result.segmentation, uninterrupted().segmentation)
    forward, reverse = result.passes
    assert forward.objects == 3 and reverse.objects == 3 and reverse.seeds_tried == 3
    # The passes disagree on who owns the walls between cells: the consensus splits the
    # walls off the cells, keeping pieces of ≥ 10 voxels.
    assert_same_partition(np.where(labels == 0, 0, result.segmentation), labels)
    assert result.objects > 3
    assert result.probability[result.segmentation > 0].min() >= 240
    assert not result.probability[result.segmentation == 0].any()
    summary = result.summary()
    assert summary["fovs"] == forward.fovs + reverse.fovs and summary["objects"] == result.objects
    assert 0 < summary["model_share"] < 1 and summary["voxels"] == labels.size
    last = reports[-1]
    assert last[0] == last[1] == len(forward_seeds()) + 3 and "reverse pass" in last[2]
    assert set(last[3]) == {
        "objects",
        "fovs_per_second",
        "segmented_voxels_per_second",
        "model_share",
    }


class Interrupted(Exception):
    pass


def interrupt_after(calls: int, predict: Predict) -> Predict:
    count = 0

    def wrapped(batch: np.ndarray) -> np.ndarray:
        nonlocal count
        count += 1
        if count > calls:
            raise Interrupted
        return predict(batch)

    return wrapped


@functools.cache
def uninterrupted() -> Segmented:
    return runner(oracle(leak=2), consensus=True).run(forward_seeds)


@pytest.mark.parametrize("calls", [300, 2000])  # in the forward pass, in the reverse one
def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path: Path, calls: int) -> None:
    whole = uninterrupted()
    assert whole.passes[0].fovs < 2000 < whole.stats.fovs

    with pytest.raises(Interrupted):
        runner(interrupt_after(calls, oracle(leak=2)), tmp_path, consensus=True).run(forward_seeds)
    saved = Checkpoints(tmp_path, "run-a").load()
    assert saved is not None and saved.pass_index == (0 if calls < 2000 else 1)

    def no_seeds() -> np.ndarray:
        raise AssertionError("a resumed run takes its seeds from the checkpoint")

    resumed = runner(oracle(leak=2), tmp_path, consensus=True).run(no_seeds, resume=True)
    assert np.array_equal(resumed.segmentation, whole.segmentation)
    assert np.array_equal(resumed.probability, whole.probability)
    assert resumed.stats.fovs == whole.stats.fovs
    assert Checkpoints(tmp_path, "another run").load() is None  # never restores a stranger


def test_without_resume_a_checkpoint_is_ignored(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        runner(interrupt_after(300, oracle()), tmp_path).run(forward_seeds)
    assert (tmp_path / "ffn-canvas.npz").exists()
    asked: list[int] = []

    def seeds() -> np.ndarray:
        asked.append(1)
        return forward_seeds()

    fresh = runner(oracle(), tmp_path).run(seeds)
    assert asked == [1] and fresh.objects == 3  # started again, from the seed policy


def test_seeds_leave_room_for_a_field_of_view() -> None:
    image = cells().astype(np.float32) * 100
    for policy in ("peaks", "grid"):
        seeds = choose_seeds(image, policy, SETTINGS, 3, (2, 4, 4))
        assert len(seeds) > 0
        assert np.all(seeds >= (2, 4, 4)) and np.all(seeds < np.subtract(image.shape, (2, 4, 4)))
    with pytest.raises(ValueError, match="unknown seed policy"):
        choose_seeds(image, "random", SETTINGS, 3, (2, 4, 4))


# A real Keras FFN --------------------------------------------------------------------

MEAN, STD = 110.0, 70.0  # cells (180) normalise to +1, walls (40) to -1


def handmade_ffn(fov: tuple[int, int, int] = (5, 9, 9), deltas: tuple[int, int, int] = (2, 4, 4)):  # type: ignore[no-untyped-def]
    """A depth-1 convstack FFN whose weights make it flood cells: logits = seed + 9·relu(image) − 3
    (bright cells rise above the move threshold, dark walls sink)."""
    from unem.ffn.model import build_ffn
    from unem.ffn.options import FFNModelOptions

    model = build_ffn(FFNModelOptions(depth=1, features=4, fov=list(fov), deltas=list(deltas)))
    for name in ("conv0_a", "conv0_b"):
        layer = model.get_layer(name)
        kernel, bias = (np.zeros_like(w) for w in layer.get_weights())
        kernel[1, 1, 1, 0, 0] = 1.0  # the image channel (then feature 0) at the centre tap
        layer.set_weights([kernel, bias])
    head = model.get_layer("conv_lom")
    kernel, bias = (np.zeros_like(w) for w in head.get_weights())
    kernel[0, 0, 0, 0, 0], bias[0] = 9.0, -3.0
    head.set_weights([kernel, bias])
    return model


def membrane_image(labels: np.ndarray) -> np.ndarray:
    return np.where(labels > 0, 180, 40).astype(np.uint8)


def closed_cells() -> np.ndarray:
    """Three cells inside thick outer walls (2 voxels in z, 4 in y and x: room for the
    field of view's centre) and 2-voxel inner walls."""
    labels = np.zeros((12, 40, 40), np.uint64)
    labels[2:10, 4:19, 4:19] = 1
    labels[2:10, 4:19, 21:36] = 2
    labels[2:10, 21:36, 4:36] = 3
    return labels


def assert_cells_found(segmentation: np.ndarray, labels: np.ndarray) -> None:
    """Each cell is mostly one object of its own, walls stay 0. (Not every voxel: the field
    of view moves to face maxima, which near walls lie off the lattice of deltas from the
    seed, so a few lattice cells are never visited; google/ffn's policy does the same.)"""
    assert not segmentation[labels == 0].any()
    found = []
    for value in np.unique(labels[labels > 0]):
        ids, counts = np.unique(segmentation[labels == value], return_counts=True)
        assert len(ids[ids > 0]) == 1, (value, ids)
        assert counts[ids > 0][0] >= 0.85 * counts.sum(), (value, ids, counts)
        found.append(int(ids[ids > 0][0]))
    assert len(set(found)) == len(found) == 3


def test_a_real_keras_ffn_segments_a_small_volume() -> None:
    from unem.ffn.inference import keras_predict, normalise

    model = handmade_ffn()
    predict = keras_predict(model, (5, 9, 9))
    batch = np.random.default_rng(0).normal(size=(1, 5, 9, 9, 2)).astype(np.float32)
    assert np.allclose(predict(batch), np.asarray(model(batch)), atol=1e-5)

    labels = closed_cells()
    image = normalise(membrane_image(labels), MEAN, STD)
    settings = CanvasSettings(fov=(5, 9, 9), deltas=(2, 4, 4), min_segment_size=100)
    run = Runner(image, settings, predict)
    result = run.run(lambda: choose_seeds(image, "peaks", settings, 3, (2, 4, 4)))
    assert_cells_found(result.segmentation, labels)
    assert result.stats.fovs > 10 and 0 < result.summary()["model_share"] < 1


# The job -----------------------------------------------------------------------------


def finished(client: FlaskClient, job_id: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").get_json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still active")


def make_ffn_dataset(ws: Any) -> str:
    """A membrane image of three cells, and a hand-made FFN model saved in the workspace."""
    from unem.ffn.model import model_info, save_ffn_model
    from unem.ffn.options import FFNModelOptions
    from unem.volumes.datasets import import_dataset
    from unem.volumes.sources import array_source

    sources = {"image": array_source(membrane_image(closed_cells()))}
    dataset = import_dataset(ws, "cells", sources, (8.0, 8.0, 8.0)).id
    options = FFNModelOptions(depth=1, features=4, fov=[5, 9, 9], deltas=[2, 4, 4])
    save_ffn_model(ws, "handmade", handmade_ffn(), model_info(options, MEAN, STD))
    return dataset


@pytest.fixture
def ffn_dataset(app: Flask) -> str:
    return make_ffn_dataset(app.extensions["unem"].workspace)


def test_an_interrupted_job_resumes_to_the_same_segmentation(
    workspace: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unem.ffn import inference
    from unem.ffn.infer_jobs import FFNInferJobOptions
    from unem.volumes.store import open_level

    dataset = make_ffn_dataset(workspace)
    options = FFNInferJobOptions(
        model="handmade",
        dataset=dataset,
        output="whole",
        min_segment_size=100,
        seed_policy="grid",
        consensus="split",
        split_min_size=50,
    )
    whole = inference.infer_dataset(workspace, options, inference.JobRun(tmp_path / "a"))
    assert not list((tmp_path / "a").iterdir())  # the checkpoint went with the output

    # Checkpoints after every seed (below the form's minimum, for the test).
    options = options.model_copy(update={"output": "resumed", "checkpoint_seconds": 0})
    real = inference.keras_predict
    monkeypatch.setattr(inference, "keras_predict", lambda *a: interrupt_after(150, real(*a)))
    with pytest.raises(Interrupted):
        inference.infer_dataset(workspace, options, inference.JobRun(tmp_path / "b"))
    saved = inference.Checkpoints(tmp_path / "b", "any").path
    assert saved.exists()
    monkeypatch.setattr(inference, "keras_predict", real)
    resumed = inference.infer_dataset(
        workspace, options, inference.JobRun(tmp_path / "b", resume=True)
    )
    assert not saved.exists()
    assert resumed["fovs"] == whole["fovs"] and resumed["objects"] == whole["objects"]
    folder = workspace.dataset_dir(dataset)
    assert np.array_equal(
        np.asarray(open_level(folder / "resumed.zarr")[:]),
        np.asarray(open_level(folder / "whole.zarr")[:]),
    )


@pytest.mark.slow  # two worker processes importing TensorFlow: ~25 s
@pytest.mark.timeout(300)
def test_the_job_segments_a_dataset_that_dojo_opens(
    app: Flask, admin_client: FlaskClient, ffn_dataset: str
) -> None:
    from unem.volumes.store import open_level

    ws = app.extensions["unem"].workspace
    labels = closed_cells()
    options = {
        "model": "handmade",
        "dataset": ffn_dataset,
        "min_segment_size": 100,
        "box": "0:12,0:40,2:40",
        "checkpoint_seconds": 5,
    }
    response = admin_client.post("/api/jobs", json={"kind": "ffn-infer", "options": options})
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert job["title"] == f"FFN handmade on {ffn_dataset}/image"
    done = finished(admin_client, job["id"])
    assert done["state"] == "done", "\n".join(done["log_tail"][-12:])
    result = done["result"]
    assert result["objects"] == 3 and result["version"] == 1
    assert result["kept"].startswith("segmentation-before-")
    assert result["probability_layer"] == "ffn-probability"
    assert {"objects", "voxels_per_second", "model_share"} <= set(done["metrics"])
    assert done["metrics"]["objects"] == 3
    assert not list((ws.root / "jobs" / str(job["id"])).rglob("ffn-canvas*.npz"))

    segmentation = np.asarray(open_level(ws.dataset_dir(ffn_dataset) / "segmentation.zarr")[:])
    assert segmentation.dtype == np.uint32 and not segmentation[:, :, :2].any()  # the box
    assert_cells_found(segmentation[:, :, 2:], labels[:, :, 2:])
    state = admin_client.get(f"/dojo/api/{ffn_dataset}/state").get_json()
    assert state["version"] == 1
    table = admin_client.get(f"/dojo/api/{ffn_dataset}/segments").get_json()
    assert table["total"] == 3
    layers = {
        layer["name"]: layer
        for layer in admin_client.get(f"/api/datasets/{ffn_dataset}").get_json()["layers"]
    }
    assert layers["ffn-probability"]["kind"] == "prediction"
    assert layers["ffn-probability"]["dtype"] == "uint8"

    # Again, into a new ground-truth layer; the probability layer exists now: overwrite.
    again = {
        **options,
        "output": "ffn-gt",
        "output_kind": "groundtruth",
        "overwrite": True,
        "seed_policy": "grid",
        "consensus": "split",
        "split_min_size": 100,
    }
    response = admin_client.post("/api/jobs", json={"kind": "ffn-infer", "options": again})
    assert response.status_code == 201, response.get_json()
    done = finished(admin_client, response.get_json()["id"])
    assert done["state"] == "done", "\n".join(done["log_tail"][-12:])
    assert done["result"]["probability_layer"] == "ffn-gt-probability"
    layers = {
        layer["name"]: layer
        for layer in admin_client.get(f"/api/datasets/{ffn_dataset}").get_json()["layers"]
    }
    assert layers["ffn-gt"]["kind"] == "groundtruth"
    gt = np.asarray(open_level(ws.dataset_dir(ffn_dataset) / "ffn-gt.zarr")[:])
    # The consensus splits where the passes disagree (here: which voxels near walls the
    # field of view reached), but never merges two cells.
    assert done["result"]["objects"] >= 3 and not gt[:, :, 2:][labels[:, :, 2:] == 0].any()
    for piece in np.unique(gt[gt > 0]):
        assert len(np.unique(labels[:, :, 2:][gt[:, :, 2:] == piece])) == 1


def test_bad_submissions_are_refused_before_a_worker_starts(
    admin_client: FlaskClient, ffn_dataset: str
) -> None:
    base = {"model": "handmade", "dataset": ffn_dataset}
    cases = [
        ({**base, "model": "nothing"}, "No trained FFN model 'nothing'"),
        ({**base, "dataset": "missing"}, "missing"),
        ({**base, "image_layer": "nope"}, "has no layer 'nope'"),
        ({**base, "box": "0:3,:,:"}, "smaller than the model's field of view"),
        ({**base, "box": "a:b"}, "Invalid box"),
        ({**base, "output": "Bad Name"}, "Layer name"),
        ({**base, "segment_threshold": 1.5}, "segment_threshold"),
        ({**base, "output": "image"}, "would replace the image"),
    ]
    for options, message in cases:
        response = admin_client.post("/api/jobs", json={"kind": "ffn-infer", "options": options})
        assert response.status_code in (400, 404), (options, response.get_json())
        assert message in response.get_json()["error"], (message, response.get_json())
    assert admin_client.get("/api/jobs").get_json()["jobs"] == []


def test_an_existing_probability_layer_needs_overwrite(
    app: Flask, admin_client: FlaskClient, ffn_dataset: str
) -> None:
    from unem.volumes.layers import add_layer

    ws = app.extensions["unem"].workspace
    planes = (np.zeros((40, 40), np.uint8) for _ in range(12))
    add_layer(ws, ffn_dataset, "ffn-probability", "prediction", "uint8", planes, "test")
    options = {"model": "handmade", "dataset": ffn_dataset}
    response = admin_client.post("/api/jobs", json={"kind": "ffn-infer", "options": options})
    assert response.status_code == 400
    assert "Tick overwrite" in response.get_json()["error"]
    kinds = admin_client.get("/api/jobs/kinds").get_json()["kinds"]
    kind = next(k for k in kinds if k["name"] == "ffn-infer")
    assert kind["resumable"] and {"output", "output_kind", "consensus"} <= set(kind["fields"])
