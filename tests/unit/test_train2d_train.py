"""The training loop and inference of the 2D trainer, with real Keras steps on the CPU:
checkpoints, TensorBoard images, resume, early stopping, tiled inference without seams,
prediction layers, trained-model import and export."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import keras
import numpy as np
import pytest
from scipy import ndimage

from unem.errors import BadInput
from unem.models.spec import ModelSpec
from unem.plugins import discover_models
from unem.train2d.infer import (
    LoadedModel,
    infer_layer,
    plan_axis,
    plan_tiling,
    predict_slice,
    predict_tiled,
)
from unem.train2d.options import AugmentOptions, InferOptions, TrainOptions
from unem.train2d.train import TrainRun, train_model
from unem.train2d.trained import get_trained_model, import_model_file, list_trained_models
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.volumes.store import open_level
from unem.workspace import Workspace

NO_AUGMENT = AugmentOptions(
    flip=0, rotate90=0, elastic=0, brightness_contrast=0, gamma=0, noise=0, blur=0
)
TINY_UNET = {"depth": 2, "base_filters": 4}


def blobs(depth: int = 6, size: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright squares (label 1) on a dark noisy background: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((depth, size, size), np.uint8)
    for z in range(depth):
        for _ in range(6):
            y, x = rng.integers(8, size - 8, 2)
            labels[z, y - 5 : y + 5, x - 5 : x + 5] = 1
    image = labels * 120.0 + 60 + rng.normal(0, 15, labels.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


@pytest.fixture
def dataset(workspace: Workspace) -> Dataset:
    image, labels = blobs()
    sources = {
        "image": array_source(image, "blobs image"),
        "groundtruth": array_source(labels, "blobs labels"),
    }
    return import_dataset(workspace, "blobs", sources)


@pytest.fixture(scope="module")
def unet() -> ModelSpec:
    return discover_models().get("unet")


def options(dataset: Dataset, **changes: Any) -> TrainOptions:
    values: dict[str, Any] = {
        "dataset": dataset.id,
        "label_layer": "groundtruth",
        "model_options": TINY_UNET,
        "patch_size": 32,
        "batch_size": 4,
        "steps": 20,
        "validate_every": 5,
        "checkpoint_every": 10,
        "validation_fraction": 0.34,
        "augment": NO_AUGMENT,
    }
    return TrainOptions(**{**values, **changes})


class Recorder:
    """Collects what a run reports."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, int, str, dict[str, float]]] = []
        self.lines: list[str] = []

    def progress(self, step: int, total: int, message: str, metrics: Any) -> None:
        self.reports.append((step, total, message, dict(metrics)))

    def run(self, folder: Path, **changes: Any) -> TrainRun:
        values: dict[str, Any] = {"progress": self.progress, "log": self.lines.append}
        return TrainRun(folder=folder, **{**values, **changes})


def test_training_saves_checkpoints_model_and_samples(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, tmp_path: Path
) -> None:
    recorder = Recorder()
    result = train_model(
        workspace, unet, options(dataset), recorder.run(tmp_path / "job", name="blob-net")
    )
    assert result["model"] == "blob-net" and result["steps"] == 20
    validated = [r for r in recorder.reports if r[2].startswith("validated")]
    assert [r[0] for r in validated] == [5, 10, 15, 20]
    assert {"loss", "val_loss", "val_dice", "val_accuracy"} <= set(validated[-1][3])
    checkpoints = tmp_path / "job" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step-*.keras")) == [
        "step-0000010.keras",
        "step-0000020.keras",
    ]
    assert (checkpoints / "best.keras").exists() and (checkpoints / "latest.keras").exists()
    assert list((tmp_path / "job" / "tensorboard" / "images").glob("events.out.tfevents.*"))
    trained = get_trained_model(workspace, "blob-net")
    assert trained.info["model"] == "unet" and trained.info["channels"] == 1
    assert trained.info["activation"] == "softmax" and trained.info["input_scale"] == 255
    assert trained.info["model_options"]["depth"] == 2
    assert set(trained.info["validation"]) >= {"loss", "dice"}
    assert [m.name for m in list_trained_models(workspace)] == ["blob-net"]


class StopAt(keras.callbacks.Callback):  # type: ignore[misc]
    """Kills a run at a given global step, as a crash would."""

    def __init__(self, step: int, per_epoch: int) -> None:
        super().__init__()
        self.step, self.per_epoch, self.epoch = step, per_epoch, 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.epoch * self.per_epoch + batch + 1 == self.step:
            raise KeyboardInterrupt("stopped by the test")


def test_resume_continues_from_the_checkpoint_step(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, tmp_path: Path
) -> None:
    folder = tmp_path / "job"
    first = Recorder()
    with pytest.raises(KeyboardInterrupt):
        train_model(
            workspace,
            unet,
            options(dataset),
            first.run(folder, extra_callbacks=[StopAt(12, 5)]),
        )
    assert max(r[0] for r in first.reports if r[2].startswith("validated")) == 10
    second = Recorder()
    result = train_model(workspace, unet, options(dataset), second.run(folder, resume=True))
    validated = [r[0] for r in second.reports if r[2].startswith("validated")]
    assert validated == [15, 20]  # steps 1-10 were not trained again
    assert min(r[0] for r in second.reports) > 10
    assert any("resumed at step 10" in line for line in second.lines)
    assert result["steps"] == 20


def test_early_stopping_ends_a_run_that_stopped_improving(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, tmp_path: Path
) -> None:
    recorder = Recorder()
    # A learning rate of 0 never improves on the first validation.
    changes = {"steps": 200, "early_stopping": 2, "learning_rate": 1e-12}
    result = train_model(
        workspace, unet, options(dataset, **changes), recorder.run(tmp_path / "job")
    )
    assert result["steps"] < 200


def test_bad_patch_size_is_refused_with_a_suggestion(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, tmp_path: Path
) -> None:
    with pytest.raises(BadInput, match=r"multiple of 4.*try 32"):
        train_model(
            workspace, unet, options(dataset, patch_size=33), Recorder().run(tmp_path / "job")
        )


def small_cnn(channels: int = 1) -> Any:
    """Three 3×3 convolutions: a receptive field of 7 pixels."""
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(x))


def test_tiled_inference_equals_whole_image_inference_away_from_the_border() -> None:
    model = small_cnn()
    image = np.random.default_rng(1).random((150, 203, 1), dtype=np.float32)
    whole = np.asarray(model.predict_on_batch(image[None]))[0]
    tiled = predict_tiled(model.predict_on_batch, image, 48, 0.25, 3)
    inner = (slice(4, -4), slice(4, -4))  # beyond the receptive field's reach of the border
    assert np.allclose(tiled[inner], whole[inner], atol=1e-5)


def test_tiled_inference_of_a_pooling_model_has_no_seams(unet: ModelSpec) -> None:
    options = unet.Options.model_validate(TINY_UNET)
    model = unet.build(options, (None, None, 1), 2)
    multiple = unet.size_multiple(options)
    image = np.random.default_rng(2).random((200, 200, 1), dtype=np.float32)
    whole = np.asarray(model.predict_on_batch(image[None]))[0]
    # Margins of (128 - 68) / 2 = 30 px exceed the receptive field's radius (about 22 px).
    tiled = predict_tiled(model.predict_on_batch, image, 128, 0.45, 4, multiple)
    inner = (slice(24, -24), slice(24, -24))
    assert np.abs(tiled[inner] - whole[inner]).max() < 1e-4


def test_tiling_covers_the_image_with_tiles_on_the_pooling_grid() -> None:
    tiling = plan_tiling(1000, 704, 250, 0.125, 8)
    for axis, length in ((tiling.rows, 1000), (tiling.cols, 704)):
        assert axis.tile % 8 == 0 and axis.step % 8 == 0 and axis.step < axis.tile
        assert axis.tile - axis.step >= 0.125 * axis.tile
        assert max(axis.starts()) + axis.tile == length
    corners = tiling.corners()
    assert len(corners) == len(tiling.rows.starts()) * len(tiling.cols.starts())


@pytest.mark.parametrize(
    ("length", "tile", "expected"),
    [
        (1024, 512, (560, 480, 2)),  # two tiles a little larger, not three of 512
        (1024, 384, (384, 336, 3)),
        (600, 512, (600, 600, 1)),  # within the growth allowance: one tile
        (4096, 512, (512, 448, 9)),  # 9 × 512 px beat 8 × 592 px
    ],
)
def test_tiling_uses_the_fewest_tiles_of_about_the_asked_size(
    length: int, tile: int, expected: tuple[int, int, int]
) -> None:
    axis = plan_axis(length, tile, 0.125, 16)
    assert (axis.tile, axis.step, len(axis.starts())) == expected


def test_small_and_odd_images_are_padded_and_cropped_back() -> None:
    model = small_cnn()
    image = np.random.default_rng(3).random((13, 21, 1), dtype=np.float32)
    out = predict_tiled(model.predict_on_batch, image, 64, 0.25, 2, multiple=8)
    assert out.shape == (13, 21, 2)


class ColumnCounter:
    """A stand-in model whose output depends on position: pixel x gets x + 1."""

    trained = SimpleNamespace(size_multiple=1, downsample=1)

    def logits(self, images: np.ndarray) -> np.ndarray:
        counted: np.ndarray = np.cumsum(np.ones_like(images[..., :1]), axis=2)
        return counted

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return logits


@pytest.mark.parametrize(
    ("augmentation", "expected"),
    [
        ("none", np.arange(1, 31, dtype=np.float32)[None, :]),  # x + 1
        ("flips", 31 / 2),  # (x + 1 + (30 - x)) / 2 everywhere
        ("dihedral", (31 / 2 + 21 / 2) / 2),  # transposed copies count rows (20) instead
    ],
)
def test_test_time_augmentation_averages_the_mirrored_predictions(
    augmentation: str, expected: Any
) -> None:
    image = np.zeros((20, 30, 1), dtype=np.float32)
    options = InferOptions(model="m", dataset="d", test_time_augmentation=augmentation)  # type: ignore[arg-type]
    probs = predict_slice(cast(LoadedModel, ColumnCounter()), image, options)
    assert probs.shape == (20, 30, 1)
    assert np.allclose(probs[..., 0], np.broadcast_to(expected, (20, 30)))


@pytest.fixture
def trained(workspace: Workspace, dataset: Dataset, unet: ModelSpec, tmp_path: Path) -> str:
    changes = {"steps": 60, "validate_every": 20, "learning_rate": 3e-3}
    run = Recorder().run(tmp_path / "job", name="blob-net")
    train_model(workspace, unet, options(dataset, **changes), run)
    return "blob-net"


def test_inference_writes_a_prediction_layer_that_finds_the_blobs(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, trained: str
) -> None:
    layer = infer_layer(
        workspace, InferOptions(model=trained, dataset=dataset.id, tile_size=64), unet
    )
    assert layer.kind == "prediction" and layer.dtype == "uint8"
    prediction = np.asarray(open_level(layer.path, "0"))
    labels = np.asarray(open_level(dataset.layer("groundtruth").path, "0"))
    assert prediction.shape == labels.shape
    assert prediction[labels == 1].mean() > prediction[labels == 0].mean() + 60
    with pytest.raises(BadInput, match="already has a layer"):
        infer_layer(workspace, InferOptions(model=trained, dataset=dataset.id), unet)


def test_inference_of_chosen_slices_only(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, trained: str
) -> None:
    chosen = InferOptions(model=trained, dataset=dataset.id, slices="1-2", output="some")
    prediction = np.asarray(open_level(infer_layer(workspace, chosen, unet).path, "0"))
    assert prediction[[0, 3, 4, 5]].max() == 0 and prediction[1:3].max() > 0


def test_a_model_trained_at_half_resolution_predicts_at_full_resolution(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, tmp_path: Path
) -> None:
    changes = {"steps": 60, "validate_every": 20, "learning_rate": 3e-3, "downsample": 2}
    run = Recorder().run(tmp_path / "job", name="half-net")
    train_model(workspace, unet, options(dataset, **changes), run)
    assert get_trained_model(workspace, "half-net").downsample == 2
    chosen = InferOptions(model="half-net", dataset=dataset.id, output="half", tile_size=32)
    prediction = np.asarray(open_level(infer_layer(workspace, chosen, unet).path, "0"))
    labels = np.asarray(open_level(dataset.layer("groundtruth").path, "0"))
    assert prediction.shape == labels.shape  # 80 px slices, predicted as 40 px ones
    # The 10 px squares are 5 px wide to the model: their edges blur, their cores must not.
    cores = ndimage.binary_erosion(labels == 1, np.ones((1, 5, 5), bool))
    # (60 steps reach a gap of about 64/255; a misplaced enlargement none.)
    assert prediction[cores].mean() > prediction[labels == 0].mean() + 40


def test_inference_with_test_time_augmentation_finds_the_blobs(
    workspace: Workspace, dataset: Dataset, unet: ModelSpec, trained: str
) -> None:
    plain = InferOptions(model=trained, dataset=dataset.id, slices="1", output="plain")
    mirrored = plain.model_copy(update={"test_time_augmentation": "dihedral", "output": "tta"})
    labels = np.asarray(open_level(dataset.layer("groundtruth").path, "0"))[1]
    found = {}
    for chosen in (plain, mirrored):
        layer = infer_layer(workspace, chosen, unet)
        found[chosen.output] = np.asarray(open_level(layer.path, "0"))[1]
    tta = found["tta"].astype(int)
    assert tta[labels == 1].mean() > tta[labels == 0].mean() + 60
    # An average of 8 copies, the plain prediction among them: close to it, not equal.
    assert 0 < np.abs(tta - found["plain"]).mean() < 30


def test_an_imported_keras_file_predicts_without_its_description(
    workspace: Workspace, dataset: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "elsewhere" / "edges.keras"
    path.parent.mkdir()
    small_cnn().save(path)
    imported = import_model_file(workspace, path)
    assert imported.name == "edges" and imported.channels is None
    loaded = LoadedModel(imported, None)
    assert (loaded.channels, loaded.n_classes) == (1, 2)
    layer = infer_layer(workspace, InferOptions(model="edges", dataset=dataset.id))
    assert np.asarray(open_level(layer.path, "0")).shape == dataset.shape
    with pytest.raises(BadInput, match=r"not a \.keras file"):
        import_model_file(workspace, tmp_path / "missing.keras")


def test_trained_model_description_is_json(workspace: Workspace, trained: str) -> None:
    info = json.loads((get_trained_model(workspace, trained).folder / "model.json").read_text())
    assert info["training"]["steps"] == 60 and info["size_multiple"] == 4


def test_savedmodel_export_is_a_zip_tensorflow_loads(workspace: Workspace, trained: str) -> None:
    import tensorflow as tf

    from unem.train2d.exporting import export_trained_model

    archive = export_trained_model(workspace, trained, "savedmodel")
    assert archive.name == "saved_model.zip" and zipfile.is_zipfile(archive)
    with zipfile.ZipFile(archive) as files:
        assert "saved_model/saved_model.pb" in files.namelist()
        files.extractall(archive.parent / "unzipped")
    loaded = tf.saved_model.load(str(archive.parent / "unzipped" / "saved_model"))
    tiles = np.zeros((1, 32, 32, 1), np.float32)
    assert tuple(loaded.serve(tiles).shape) == (1, 32, 32, 2)
    assert export_trained_model(workspace, trained, "keras").name == "model.keras"
    files = get_trained_model(workspace, trained).to_json()["files"]
    assert {"model.keras", "saved_model.zip"} <= set(files)
