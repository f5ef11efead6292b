"""FFN training: movement policies on fake predictions, augmentation, a few real steps that
learn, checkpoints and resume, and prep → train through the real job manager on a crop of
the FlyEM medulla sample."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from unem.errors import BadInput
from unem.ffn.model import build_ffn, initial_seed
from unem.ffn.options import PRESETS, FFNPrepOptions, FFNTrainOptions, logit
from unem.ffn.prep import prepare
from unem.ffn.train import (
    BatchSampler,
    FovSequence,
    MoveStats,
    Trainer,
    TrainingVolume,
    TrainRun,
    Transform,
    face_moves,
    fixed_offsets,
    fov_shifts,
    latest_checkpoint,
    make_optimizer,
    max_pred_offsets,
    object_targets,
    permutable_axes,
    train_ffn,
)
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

FOV, DELTAS = (9, 17, 17), [2, 4, 4]


def point(centre: np.ndarray, *offset: int) -> tuple[int, ...]:
    return tuple(int(c + o) for c, o in zip(centre, offset, strict=True))


def sequence_for(labels: np.ndarray) -> FovSequence:
    image = np.zeros(labels.shape, dtype=np.float32)
    return FovSequence(image, object_targets(labels), initial_seed(labels.shape), FOV)


def test_face_moves_pick_the_best_voxel_of_each_face_within_the_deltas() -> None:
    probability = np.zeros(FOV, dtype=np.float32)
    centre = np.array(FOV) // 2
    probability[point(centre, 0, 1, 4)] = 0.95  # on the +x face, one voxel off-axis
    probability[point(centre, -2, 0, -1)] = 0.8  # on the -z face
    probability[point(centre, 0, 6, 4)] = 0.99  # +x face, but beyond ±delta in y
    assert face_moves(probability, DELTAS, 0.9) == [(pytest.approx(0.95), (0, 1, 4))]
    moves = face_moves(probability, DELTAS, 0.7)
    assert [m for _, m in moves] == [(0, 1, 4), (-2, 0, -1)]  # best first


def test_fixed_policy_takes_only_shifts_the_canvas_has_reached() -> None:
    patch = tuple(f + 2 * d for f, d in zip(FOV, DELTAS, strict=True))
    labels = np.zeros(patch, dtype=np.uint32)
    labels[..., patch[2] // 2 :] = 1  # the object: the half from the centre towards +x
    sequence = sequence_for(labels)
    centre = np.array(patch) // 2
    sequence.seed[point(centre, 0, 0, 4)] = logit(0.97)  # filled in at the +x shift
    stats = MoveStats()
    shifts = fov_shifts(DELTAS)
    assert len(shifts) == 26 and (0, 0, 4) in shifts and (-2, -4, -4) in shifts
    taken = list(fixed_offsets(sequence, shifts, 0.9, stats))
    assert taken == [(0, 0, 0), (0, 0, 4)]
    # the object lies at the 8 shifts with x = 0 and the 9 with x = +4
    assert (stats.correct, stats.spurious, stats.missed) == (2, 0, 16)


def test_max_pred_policy_follows_the_prediction_by_deltas() -> None:
    moves, radius = 2, (4, 8, 8)
    patch = tuple(f + 2 * r for f, r in zip(FOV, radius, strict=True))
    centre = np.array(patch) // 2
    labels = np.zeros(patch, dtype=np.uint32)
    labels[centre[0], centre[1] - 1 : centre[1] + 2, centre[2] - 1 :] = 1  # a rod along +x
    # A fake network: high on the rod, highest on its axis, low elsewhere.
    y = np.indices(patch)[1]
    fake = np.where(labels > 0, 4.0 - np.abs(y - centre[1]), -4.0).astype(np.float32)
    sequence = sequence_for(labels)
    stats = MoveStats()
    taken = []
    for offset in max_pred_offsets(sequence, DELTAS, radius, 0.9, stats):
        taken.append(offset)
        sequence.update(offset, fake[sequence.window(offset)])  # what training does
    assert taken == [(0, 0, 0), (0, 0, 4), (0, 0, 8)][: 1 + moves]
    assert sequence.visited == 3 and stats.spurious == 0
    # the canvas holds the prediction wherever a FOV was
    assert sequence.seed[point(centre, 0, 0, 12)] == pytest.approx(4.0)


def test_sampler_writes_predictions_into_each_canvas_and_starts_new_sequences() -> None:
    labels = np.ones((20, 34, 34), dtype=np.uint32)
    data = TrainingVolume(
        np.zeros(labels.shape, np.float32), labels, np.array([[10, 17, 17]]), [1.0, 1.0, 1.0]
    )
    options = FFNTrainOptions(preparation="p", preset="cpu_tiny", batch_size=2)
    sampler = BatchSampler(data, PRESETS["cpu_tiny"], options, np.random.default_rng(0))
    inputs, targets = sampler.batch()
    assert inputs.shape == (2, *FOV, 2) and targets.shape == (2, *FOV, 1)
    assert np.allclose(targets, 0.95)  # everything is the object
    assert inputs[0, 4, 8, 8, 1] == pytest.approx(logit(0.95))
    for _ in range(27):  # confident everywhere: every fixed shift is taken
        sampler.update(np.full((2, *FOV, 1), 5.0, np.float32))
    assert sampler.stats.sequences == 2 and sampler.stats.fovs == 54
    assert sampler.batch()[0][0, 0, 0, 0, 1] == pytest.approx(logit(0.05))  # a fresh canvas


def test_axis_permutation_and_reflection() -> None:
    sparse, iso = PRESETS["cpu_sparse_z"], PRESETS["cpu_isotropic"]
    assert permutable_axes("auto", sparse, [1, 1, 1]) == (1, 2)
    assert permutable_axes("auto", iso, [1, 1, 1]) == (0, 1, 2)
    assert permutable_axes("auto", iso, [40, 4, 4]) == (1, 2)  # anisotropic voxels
    with pytest.raises(BadInput):
        permutable_axes("xyz", sparse, [1, 1, 1])
    array = np.arange(24).reshape(2, 3, 4)
    swapped = Transform((0, 2, 1), (True, False, False))(array)
    assert swapped.shape == (2, 4, 3) and swapped[0, 1, 2] == array[1, 2, 1]


def ball_volume(rng: np.random.Generator) -> TrainingVolume:
    z, y, x = np.mgrid[:24, :40, :40]
    labels = ((z - 12) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 < 100).astype(np.uint32)
    image = np.where(labels > 0, 1.0, -1.0) + rng.normal(0, 0.3, labels.shape)
    coordinates = np.argwhere(np.ones((12, 16, 16))) + np.array([6, 12, 12])
    return TrainingVolume(image.astype(np.float32), labels, coordinates, [1.0, 1.0, 1.0])


def test_a_few_real_steps_learn_a_trivial_object() -> None:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    options = FFNTrainOptions(
        preparation="p", preset="cpu_tiny", batch_size=4, learning_rate=0.01, steps=30
    )
    trainer = Trainer(build_ffn(PRESETS["cpu_tiny"]), make_optimizer(options))
    sampler = BatchSampler(ball_volume(rng), PRESETS["cpu_tiny"], options, rng)
    losses = []
    for _ in range(30):
        inputs, targets = sampler.batch()
        loss, logits = trainer.step(inputs, targets)
        assert logits.shape == targets.shape
        sampler.update(logits)
        losses.append(loss)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    assert sampler.stats.sequences > 0 and sampler.stats.fovs > sampler.stats.sequences


def test_checkpoint_restores_weights_and_optimizer(tmp_path: Path) -> None:
    options = FFNTrainOptions(preparation="p", preset="cpu_tiny", optimizer="adam")
    trainer = Trainer(build_ffn(PRESETS["cpu_tiny"]), make_optimizer(options))
    inputs = np.random.default_rng(0).normal(size=(1, *FOV, 2)).astype(np.float32)
    targets = np.full((1, *FOV, 1), 0.95, np.float32)
    trainer.step(inputs, targets)
    trainer.save(tmp_path / "ckpt-1", {"step": 1})
    saved = [np.array(w) for w in trainer.model.get_weights()]
    moments = [v.numpy() for v in trainer.optimizer.variables]
    trainer.step(inputs, targets)
    assert trainer.restore(tmp_path / "ckpt-1") == {"step": 1}
    assert all(
        np.array_equal(a, b) for a, b in zip(saved, trainer.model.get_weights(), strict=True)
    )
    assert all(
        np.array_equal(a, np.asarray(b))
        for a, b in zip(moments, trainer.optimizer.variables, strict=True)
    )


@pytest.fixture
def prepared(tmp_path: Path) -> Workspace:
    """A workspace with a preparation `rods` of a synthetic dataset."""
    ws = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(0)
    labels = np.zeros((16, 40, 40), dtype=np.uint32)
    for i, y in enumerate(range(4, 40, 8)):
        labels[:, y : y + 5, :] = i + 1
    image = np.where(labels > 0, 170, 60) + rng.integers(0, 20, labels.shape)
    sources = {"image": array_source(image.astype(np.uint8)), "groundtruth": array_source(labels)}
    dataset = import_dataset(ws, "rods", sources)
    options = FFNPrepOptions(dataset=dataset.id, preset="cpu_tiny", min_size=100)
    prepare(ws, options, "rods", log=lambda _: None)
    return ws


def test_training_resumes_from_its_last_checkpoint(prepared: Workspace, tmp_path: Path) -> None:
    options = FFNTrainOptions(
        preparation="rods",
        preset="cpu_tiny",
        batch_size=2,
        steps=6,
        checkpoint_every=2,
        summary_every=2,
    )
    reports: list[tuple[int, str, dict[str, float]]] = []
    logs: list[str] = []

    def run(**kwargs: Any) -> TrainRun:
        return TrainRun(
            folder=tmp_path / "job",
            progress=lambda step, total, message, metrics: reports.append(
                (step, message, dict(metrics))
            ),
            log=logs.append,
            name="rods-ffn",
            **kwargs,
        )

    first = train_ffn(prepared, options, run(stop_after=5))  # as if cancelled at step 5
    assert first["steps"] == 5 and first["model"] is None
    assert latest_checkpoint(tmp_path / "job" / "checkpoints").name == "ckpt-4"
    summaries = [metrics for _, _, metrics in reports if "eval/f1" in metrics]
    assert summaries and {"loss", "eval/precision", "moves/per_sequence"} <= set(summaries[0])
    reports.clear()
    second = train_ffn(prepared, options, run(resume=True))
    assert "resumed from ckpt-4 at step 4" in logs
    assert reports[0][0] == 5 and second["steps"] == 6
    assert second["model"] == "rods-ffn"
    assert (prepared.root / "models" / "rods-ffn" / "model.keras").is_file()
    assert list((tmp_path / "job" / "tensorboard" / "images").glob("events.out.tfevents.*"))


# --- through the job manager ----------------------------------------------------------------


def finished(client: FlaskClient, job_id: int, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").get_json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still active")


def submit(client: FlaskClient, kind: str, options: dict[str, Any]) -> int:
    response = client.post("/api/jobs", json={"kind": kind, "options": options})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


@pytest.fixture
def medulla(app: Flask, data: Path) -> str:
    """A 24×100×100 crop of the FlyEM medulla sample with its body ground truth."""
    import tifffile
    from PIL import Image

    folder = data / "flyem_fib_medulla_neuroproof_sample2"
    files = sorted((folder / "grayscale_maps").glob("iso.*.png"))[:24]
    image = np.stack([np.asarray(Image.open(f))[:100, :100] for f in files])
    bodies = tifffile.imread(folder / "groundtruth_bodies.tif")[:24, :100, :100]
    sources = {"image": array_source(image), "groundtruth": array_source(bodies)}
    ws = app.extensions["unem"].workspace
    return import_dataset(ws, "medulla", sources, (10, 10, 10)).id


@pytest.mark.timeout(300)
def test_prep_and_train_on_medulla_through_the_job_manager(
    app: Flask, admin_client: FlaskClient, medulla: str
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from unem.ffn import list_ffn_models
    from unem.ffn.prep import get_preparation

    ws = app.extensions["unem"].workspace
    prep_id = submit(
        admin_client,
        "ffn-prep",
        {"dataset": medulla, "preset": "cpu_tiny", "min_size": 500, "name": "medulla-gt"},
    )
    prep = finished(admin_client, prep_id)
    assert prep["state"] == "done", prep["log_tail"]
    assert prep["result"]["preparation"] == "medulla-gt" and prep["result"]["objects"] > 5
    preparation = get_preparation(ws, "medulla-gt")
    assert 26 < preparation.info["image_mean"] < 217

    bad = admin_client.post(
        "/api/jobs",
        json={"kind": "ffn-train", "options": {"preparation": "missing"}},
    )
    assert bad.status_code in (400, 404)

    train_id = submit(
        admin_client,
        "ffn-train",
        {
            "preparation": "medulla-gt",
            "preset": "cpu_tiny",
            "batch_size": 2,
            "steps": 8,
            "summary_every": 4,
            "checkpoint_every": 4,
            "fov_policy": "max_pred_moves",
            "output": "medulla-ffn",
        },
    )
    trained = finished(admin_client, train_id)
    assert trained["state"] == "done", trained["log_tail"]
    assert trained["result"]["model"] == "medulla-ffn" and trained["result"]["steps"] == 8
    assert trained["result"]["moves_per_sequence"] >= 1
    assert [m.name for m in list_ffn_models(ws)] == ["medulla-ffn"]
    info = list_ffn_models(ws)[0].info
    assert info["preparation"] == "medulla-gt" and info["fov"] == [9, 17, 17]
    assert info["image_mean"] == pytest.approx(preparation.info["image_mean"])
    board = ws.root / "jobs" / str(train_id) / "tensorboard"
    scalars = EventAccumulator(str(board))
    scalars.Reload()
    assert {"loss", "eval/f1", "eval/precision", "moves/per_sequence"} <= set(
        scalars.Tags()["scalars"]
    )
    images = EventAccumulator(str(board / "images"), size_guidance={"tensors": 0})
    images.Reload()
    assert {"final_xy", "final_xz", "final_yz"} <= set(images.Tags()["tensors"])
