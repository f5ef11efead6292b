"""The training loop of a 2D CNN: Keras `fit` over random augmented patches.

Keras does the heavy lifting (compiled train step, `BackupAndRestore` for resume after a
cancel or a crash, `ModelCheckpoint` for the best model, `EarlyStopping`); UNEM adds the
data, the losses, progress reports for the jobs page and TensorBoard image samples.
One Keras "epoch" is `validate_every` steps, so validation, the resume point and the
progress curve all fall on the same steps.

Keras is imported at the top: this module runs only in worker processes (the job kind
module that the server reads imports it inside the job's function).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from unem.models.spec import ModelSpec
from unem.train2d.data import (
    PatchSampler,
    TrainingData,
    describe,
    load_training_data,
    split_by_slice,
    validation_batches,
)
from unem.train2d.losses import LOSSES, class_weights_from_frequency, pixel_scores, probabilities
from unem.train2d.options import TrainOptions
from unem.train2d.trained import save_trained_model
from unem.workspace import Workspace

Metrics = Mapping[str, float]
REPORT_SECONDS = 0.5  # at most two progress reports a second between validations
IMAGE_SAMPLES = 3  # validation tiles shown in TensorBoard


@dataclass
class TrainRun:
    """Where a training run writes, and whom it tells."""

    folder: Path  # the job's folder: checkpoints/ and tensorboard/ go here
    progress: Callable[[int, int, str, Metrics], None]
    log: Callable[[str], None] = print
    resume: bool = False
    name: str = "model"  # the trained model's name in the workspace
    extra_callbacks: Sequence[Any] = field(default_factory=tuple)  # tests stop a run midway

    @property
    def checkpoints(self) -> Path:
        path = self.folder / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path


def train_model(
    ws: Workspace, spec: ModelSpec, options: TrainOptions, run: TrainRun
) -> dict[str, Any]:
    """Train `spec` on the dataset of `options`; save it as a trained model; say how it went."""
    model_options = spec.validate(options.model_options)
    data = load_training_data(ws, options)
    split = split_by_slice(data.slices, options.validation_fraction, options.seed)
    training, validation = split.train, split.validation  # rows of `data`, not z
    run.log(f"data: {json.dumps(describe(data, split))}")
    keras.utils.set_random_seed(options.seed)
    model = build_compiled(spec, model_options, options, data, training)
    prepare = functools.partial(spec.preprocess, options=model_options)
    patches = PatchDataset(
        prepare,
        PatchSampler(
            data,
            training,
            options.patch_size,
            options.batch_size,
            options.channels,
            options.augment,
            options.seed,
        ),
        options.validate_every,
    )
    held_out = _validation_arrays(data, validation, options)
    if held_out is not None:
        held_out = prepare(held_out[0]), held_out[1]
    epochs = math.ceil(options.steps / options.validate_every)
    progress = ProgressCallback(options, run, held_out)
    callbacks = _callbacks(options, run, held_out, progress)
    started = time.monotonic()
    history = model.fit(
        patches,
        epochs=epochs,
        validation_data=held_out if held_out is not None else None,
        callbacks=callbacks,
        verbose=0,
    )
    steps_done = (history.epoch[-1] + 1) * options.validate_every if history.epoch else 0
    best = _best_model_file(run)
    info = _model_info(spec, model_options, options, progress.validations, steps_done)
    info["input_scale"] = data.scale  # inference divides raw values by the same
    saved = save_trained_model(ws, run.name, best, info)
    run.log(f"saved the trained model as {saved}")
    return {
        "model": run.name,
        "steps": min(steps_done, options.steps),
        "seconds": round(time.monotonic() - started, 1),
        "validation": info["validation"],
    }


def build_compiled(
    spec: ModelSpec,
    model_options: Any,
    options: TrainOptions,
    data: TrainingData,
    training: Sequence[int],
) -> Any:
    """The model built for patches of the chosen size, compiled with its loss and Adam."""
    loss = LOSSES[options.loss]
    weights = list(options.class_weights)
    if options.loss == "weighted_cross_entropy" and not weights:
        weights = list(class_weights_from_frequency(data.targets[training], options.n_classes))
    if weights and len(weights) != options.n_classes:
        from unem.errors import BadInput

        raise BadInput(f"class_weights has {len(weights)} values for {options.n_classes} classes.")
    multiple = spec.size_multiple(model_options)
    if options.patch_size % multiple:
        from unem.errors import BadInput

        size = max(multiple, round(options.patch_size / multiple) * multiple)
        raise BadInput(
            f"patch_size must be a multiple of {multiple} for this {spec.title} "
            f"(its pooling halves the size that often); try {size}."
        )
    # Any height and width: the same model then predicts tiles of any (multiple) size.
    model = spec.build(model_options, (None, None, options.channels), options.n_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(options.learning_rate),
        loss=loss.make(options.n_classes, weights or None),
        jit_compile=False,  # XLA compiles for minutes on CPU and changes nothing here
    )
    return model


def _validation_arrays(
    data: TrainingData, validation: Sequence[int], options: TrainOptions
) -> tuple[np.ndarray, np.ndarray] | None:
    if not validation:
        return None
    batches = list(validation_batches(data, validation, options.patch_size, options.channels))
    if not batches:
        return None
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def _callbacks(
    options: TrainOptions,
    run: TrainRun,
    held_out: tuple[np.ndarray, np.ndarray] | None,
    progress: ProgressCallback,
) -> list[Any]:
    monitor = "val_loss" if held_out is not None else "loss"
    callbacks: list[Any] = [
        # First: it sets the epoch to resume from before the others see a batch.
        keras.callbacks.BackupAndRestore(
            str(run.checkpoints / "backup"), save_freq="epoch", delete_checkpoint=True
        ),
        progress,
        keras.callbacks.ModelCheckpoint(
            str(run.checkpoints / "best.keras"), monitor=monitor, save_best_only=True
        ),
        PeriodicCheckpoint(run.checkpoints, options.validate_every, options.checkpoint_every),
        keras.callbacks.ModelCheckpoint(str(run.checkpoints / "latest.keras")),
    ]
    if options.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, patience=options.early_stopping)
        )
    if held_out is not None:
        callbacks.append(ImageSamples(run.folder / "tensorboard", held_out, options))
    return callbacks + list(run.extra_callbacks)


def _best_model_file(run: TrainRun) -> Path:
    best = run.checkpoints / "best.keras"
    return best if best.exists() else run.checkpoints / "latest.keras"


def _model_info(
    spec: ModelSpec,
    model_options: Any,
    options: TrainOptions,
    validations: Sequence[Mapping[str, float]],
    steps_done: int,
) -> dict[str, Any]:
    keys = sorted({key for scores in validations for key in scores if key.startswith("val_")})
    validation = {
        key[4:]: _best_value(key, [scores[key] for scores in validations if key in scores])
        for key in keys
    }
    return {
        "model": spec.name,
        "model_title": spec.title,
        "model_options": model_options.model_dump(),
        "training": options.model_dump(exclude={"model_options"}),
        "channels": options.channels,
        "n_classes": options.n_classes,
        "loss": options.loss,
        "activation": LOSSES[options.loss].activation,
        "size_multiple": spec.size_multiple(model_options),
        "patch_size": options.patch_size,
        "downsample": options.downsample,
        "steps": min(steps_done, options.steps),
        "validation": validation,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _best_value(key: str, values: Sequence[float]) -> float:
    pick = min if key.endswith("loss") else max
    return round(float(pick(values)), 5) if values else float("nan")


class PatchDataset(keras.utils.PyDataset):  # type: ignore[misc]
    """Keras data: `steps` random batches per epoch, made by worker threads ahead of use."""

    def __init__(
        self, prepare: Callable[[np.ndarray], np.ndarray], sampler: PatchSampler, steps: int
    ) -> None:
        # Threads, not processes: augmentation is numpy/scipy, which release the GIL.
        super().__init__(workers=2, use_multiprocessing=False, max_queue_size=8)
        self.prepare, self.sampler, self.steps = prepare, sampler, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.sampler.batch()
        return self.prepare(x), y  # the model's own preprocess hook, as in inference


class ProgressCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Reports the step, the running loss and validation scores to the job's page."""

    def __init__(
        self,
        options: TrainOptions,
        run: TrainRun,
        held_out: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        super().__init__()
        self.options, self.run, self.held_out = options, run, held_out
        self.per_epoch = options.validate_every
        self.epoch, self.last_report = 0, 0.0
        self.validations: list[dict[str, float]] = []  # the logs of every epoch, in order

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run.resume and self.epoch == 0 and epoch:
            self.run.log(f"resumed at step {epoch * self.per_epoch}")
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if now - self.last_report < REPORT_SECONDS:
            return
        self.last_report = now
        step = min(self.epoch * self.per_epoch + batch + 1, self.options.steps)
        loss = float((logs or {}).get("loss", float("nan")))
        self.run.progress(step, self.options.steps, "training", {"loss": loss})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.held_out is not None:
            logs.update(validation_scores(self.model, self.held_out, self.options))
        step = min((epoch + 1) * self.per_epoch, self.options.steps)
        metrics = {k: float(v) for k, v in logs.items() if isinstance(v, int | float | np.number)}
        self.validations.append(metrics)
        self.run.progress(step, self.options.steps, f"validated at step {step}", metrics)


def validation_scores(
    model: Any, held_out: tuple[np.ndarray, np.ndarray], options: TrainOptions
) -> dict[str, float]:
    """Pixel scores of the model on the held-out tiles, named `val_<score>`."""
    logits = model.predict(held_out[0], batch_size=options.batch_size, verbose=0)
    probs = probabilities(np.asarray(logits), LOSSES[options.loss].activation)
    scores = pixel_scores(probs, held_out[1], options.n_classes)
    return {f"val_{name}": float(value) for name, value in scores.items() if name != "pixels"}


class PeriodicCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
    """Keeps `step-<N>.keras` every `every` steps (on the first validation step at or past N)."""

    def __init__(self, folder: Path, per_epoch: int, every: int) -> None:
        super().__init__()
        self.folder, self.per_epoch, self.every = folder, per_epoch, every

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        step = (epoch + 1) * self.per_epoch
        if step // self.every > (step - self.per_epoch) // self.every:
            self.model.save(self.folder / f"step-{step:07d}.keras")


class ImageSamples(keras.callbacks.Callback):  # type: ignore[misc]
    """Input, label and prediction of a few validation tiles as TensorBoard images."""

    def __init__(
        self, folder: Path, held_out: tuple[np.ndarray, np.ndarray], options: TrainOptions
    ) -> None:
        import tensorflow as tf

        super().__init__()
        self.x, self.y = held_out[0][:IMAGE_SAMPLES], held_out[1][:IMAGE_SAMPLES]
        self.options = options
        self.writer = tf.summary.create_file_writer(str(folder / "images"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import tensorflow as tf

        logits = np.asarray(self.model.predict(self.x, verbose=0))
        probs = probabilities(logits, LOSSES[self.options.loss].activation)
        middle = self.x.shape[-1] // 2  # the slice itself when neighbours are channels
        with self.writer.as_default(step=(epoch + 1) * self.options.validate_every):
            tf.summary.image("input", self.x[..., middle : middle + 1])
            tf.summary.image("label", _label_image(self.y, self.options.n_classes))
            tf.summary.image("prediction", probs[..., 1:2] if probs.shape[-1] > 1 else probs)
        self.writer.flush()


def _label_image(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Class maps as grey levels (ignored pixels black) for TensorBoard."""
    grey = np.where(targets < n_classes, (targets.astype(np.float32) + 1) / n_classes, 0.0)
    return grey[..., None].astype(np.float32)


def checkpoint_state(folder: Path) -> dict[str, Any]:
    """What a run's checkpoints folder holds (for the job result and tests)."""
    checkpoints = folder / "checkpoints"
    return {
        "numbered": sorted(p.name for p in checkpoints.glob("step-*.keras")),
        "best": (checkpoints / "best.keras").exists(),
        "latest": (checkpoints / "latest.keras").exists(),
    }


def save_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))
