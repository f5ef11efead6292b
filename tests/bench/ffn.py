"""Flood-filling network benchmarks: training step throughput and inference throughput.

- training steps/s: `train_ffn` (the job's whole loop: FOV sequences and their movement
  policy, augmentation, the compiled step returning loss and logits, metrics, TensorBoard
  summaries at the default `summary_every`) against a bare Keras `train_on_batch` of the
  same model, optimizer and loss on batches of the same shape, drawn beforehand. UNEM is
  timed from its progress reports: from the first at or after `warm_up` steps to the last
  before the final step (the end writes a checkpoint and saves the model); the bare loop
  over as many steps after the same warm-up. Checkpoints (every 500 steps by default) fall
  outside the window: the note gives the time of one and what it adds per step.
- inference voxels/s: a `Runner` pass (seed policy `peaks`, the face-max movement policy,
  the canvas bookkeeping) over a box of the training volume with the model trained just
  before, against the bare forward passes it performed: the inputs of a first pass are
  recorded, and replayed through the same traced call, one after the other, after each
  timed pass. The ratio is the share of the run spent in the model (target ≥ 0.7). The
  note also gives the share the canvas itself measured around its model calls, and a bare
  `predict_on_batch` for comparison.

The data are synthetic: Voronoi cells with dark membranes, as labels and EM-like image.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from scipy import ndimage

from tests.bench.results import Result, Target
from unem.ffn.canvas import CanvasSettings
from unem.ffn.inference import Runner, choose_seeds, keras_predict, normalise, read_box
from unem.ffn.model import build_ffn, load_ffn_model
from unem.ffn.options import FFNPrepOptions, FFNTrainOptions
from unem.ffn.prep import get_preparation, prepare
from unem.ffn.train import (
    BatchSampler,
    Trainer,
    TrainRun,
    load_training_volume,
    make_optimizer,
    train_ffn,
)
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

Log = Callable[[str], None]
MODEL_NAME = "bench-ffn"


@dataclass(frozen=True)
class Sizes:
    preset: str
    shape: tuple[int, int, int]  # of the synthetic volume
    cells: int
    batch: int
    steps: int  # of each UNEM run; the window is warm_up … the last report before the end
    warm_up: int
    summary_every: int
    train_repeats: int
    box: str  # segmented by the inference benchmark
    min_segment_size: int
    infer_repeats: int
    on_batch_calls: int  # predict_on_batch calls timed for the note


FULL = Sizes(
    preset="cpu_sparse_z",
    shape=(32, 128, 128),
    cells=120,
    batch=4,
    steps=200,
    warm_up=20,
    summary_every=FFNTrainOptions.model_fields["summary_every"].default,
    train_repeats=3,
    box="4:28,16:112,16:112",
    min_segment_size=100,
    infer_repeats=3,
    on_batch_calls=25,
)
QUICK = Sizes(
    preset="cpu_tiny",
    shape=(16, 64, 64),
    cells=30,
    batch=2,
    steps=40,
    warm_up=10,
    summary_every=10,
    train_repeats=1,
    box="",
    min_segment_size=20,
    infer_repeats=1,
    on_batch_calls=8,
)


def run_ffn_benchmarks(scratch: Path, quick: bool, log: Log) -> list[Result]:
    sizes = QUICK if quick else FULL
    ws = Workspace(scratch / "ffn-workspace")
    dataset = cells_dataset(ws, sizes)
    prep = {"dataset": dataset.id, "preset": sizes.preset, "min_size": 100}
    prepare(ws, FFNPrepOptions.model_validate(prep), "cells", log=lambda _: None)
    log(f"  training steps/s against a bare train_on_batch ({sizes.preset})")
    results = [train_benchmark(ws, sizes, scratch, log)]
    log("  inference voxels/s against the bare forward passes it made")
    results.append(inference_benchmark(ws, dataset, sizes, log))
    return results


def cells_dataset(ws: Workspace, sizes: Sizes) -> Dataset:
    """Voronoi cells (labels, 0 on their borders) and an image with dark membranes."""
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(0)
    centres = np.stack([rng.integers(0, s, sizes.cells) for s in sizes.shape], axis=1)
    free = np.ones(sizes.shape, dtype=bool)
    free[tuple(centres.T)] = False
    _, nearest = ndimage.distance_transform_edt(free, return_indices=True)
    _, labels = np.unique(np.ravel_multi_index(tuple(nearest), sizes.shape), return_inverse=True)
    labels = labels.reshape(sizes.shape).astype(np.uint32) + 1
    borders = find_boundaries(labels, mode="thick")
    image = np.where(borders, 60.0, 170.0) + rng.normal(0, 15, sizes.shape)
    image = np.clip(ndimage.gaussian_filter(image, 0.7), 0, 255).astype(np.uint8)
    labels[borders] = 0
    sources = {"image": array_source(image), "groundtruth": array_source(labels)}
    return import_dataset(ws, "ffn-cells", sources)


# --- training ---------------------------------------------------------------------------


def train_options(sizes: Sizes) -> FFNTrainOptions:
    return FFNTrainOptions(
        preparation="cells",
        preset=sizes.preset,
        batch_size=sizes.batch,
        steps=sizes.steps,
        summary_every=sizes.summary_every,
        optimizer="adam",  # learns the synthetic cells in a few hundred steps
        output=MODEL_NAME,
    )


@dataclass
class StepSample:
    steps_per_second: float
    step_seconds: float


def unem_train(ws: Workspace, options: FFNTrainOptions, folder: Path, warm_up: int) -> StepSample:
    """Steps/s of `train_ffn` between its progress reports (see the module docstring)."""
    reports: list[tuple[float, int]] = []

    def progress(step: int, total: int, message: str, metrics: Any) -> None:
        reports.append((time.perf_counter(), step))

    train_ffn(ws, options, TrainRun(folder, progress, log=lambda _: None, name=MODEL_NAME))
    window = [(t, s) for t, s in reports if warm_up <= s < options.steps]
    (start, first), (end, last) = window[0], window[-1]
    if last <= first:
        raise RuntimeError(f"no steps between the reports: {reports}")
    seconds = (end - start) / (last - first)
    return StepSample(1 / seconds, seconds)


def drawn_batches(ws: Workspace, options: FFNTrainOptions, count: int) -> list[Any]:
    """`count` batches of the training sampler (their content does not change the cost)."""
    geometry = options.model_options()
    data = load_training_volume(ws, get_preparation(ws, options.preparation))
    sampler = BatchSampler(data, geometry, options, np.random.default_rng(1))
    batches = []
    for _ in range(count):
        inputs, targets = sampler.batch()
        batches.append((inputs, targets))
        sampler.update(np.full(targets.shape, 3.0, np.float32))  # confident: FOVs move on
    return batches


def bare_train(options: FFNTrainOptions, batches: list[Any], warm_up: int) -> StepSample:
    """Steps/s of a compiled Keras model's `train_on_batch` on the same batches."""
    keras.utils.set_random_seed(options.seed)
    model = build_ffn(options.model_options())
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer=make_optimizer(options), loss=loss)
    for inputs, targets in batches[:warm_up]:
        model.train_on_batch(inputs, targets)
    started = time.perf_counter()
    for inputs, targets in batches[warm_up:]:
        model.train_on_batch(inputs, targets)
    seconds = (time.perf_counter() - started) / (len(batches) - warm_up)
    return StepSample(1 / seconds, seconds)


def sampler_seconds(ws: Workspace, options: FFNTrainOptions, count: int = 50) -> float:
    """Seconds the sampler takes for one batch and its update (no model)."""
    started = time.perf_counter()
    drawn_batches(ws, options, count)
    return (time.perf_counter() - started) / count


def checkpoint_seconds(options: FFNTrainOptions, folder: Path) -> float:
    trainer = Trainer(build_ffn(options.model_options()), make_optimizer(options))
    started = time.perf_counter()
    trainer.save(folder / "ckpt-1", {"step": 1})
    return time.perf_counter() - started


def train_benchmark(ws: Workspace, sizes: Sizes, scratch: Path, log: Log) -> Result:
    options = train_options(sizes)
    batches = drawn_batches(ws, options, sizes.steps)
    found: dict[str, list[StepSample]] = {"unem": [], "bare": []}
    runs = {
        "unem": lambda: unem_train(
            ws, options, scratch / f"ffn-job-{time.time_ns()}", sizes.warm_up
        ),
        "bare": lambda: bare_train(options, batches, sizes.warm_up),
    }
    order = list(runs)
    for repeat in range(sizes.train_repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            found[name].append(runs[name]())
            log(f"    {name}: {found[name][-1].steps_per_second:.3g} steps/s")
    step = statistics.median(s.step_seconds for s in found["unem"])
    bare = statistics.median(s.step_seconds for s in found["bare"])
    sampling = sampler_seconds(ws, options)
    checkpoint = checkpoint_seconds(options, scratch / f"ffn-ckpt-{time.time_ns()}")
    every = FFNTrainOptions.model_fields["checkpoint_every"].default
    geometry = options.model_options()
    note = (
        f"{sizes.preset} (FOV {geometry.fov}, depth {geometry.depth}, {geometry.features} "
        f"features), batch {sizes.batch}, Adam; median step {step * 1000:.0f} ms (bare "
        f"{bare * 1000:.0f} ms); sampler and canvas updates {sampling * 1000:.1f} ms per "
        f"batch; summaries every {sizes.summary_every} steps included; a checkpoint takes "
        f"{checkpoint:.2f} s, {checkpoint / every * 1000:.1f} ms per step at checkpoint_every="
        f"{every}"
    )
    return Result(
        f"FFN training steps/s, {sizes.preset}",
        "steps/s",
        [s.steps_per_second for s in found["unem"]],
        [s.steps_per_second for s in found["bare"]],
        Target("ratio", True, 0.9),
        note=note,
    )


# --- inference --------------------------------------------------------------------------


@dataclass
class InferSample:
    voxels_per_second: float
    fovs: int
    model_share: float  # measured by the canvas around its model calls
    objects: int


class Recorder:
    """A predict function that keeps a copy of every input it is given."""

    def __init__(self, predict: Callable[[np.ndarray], Any]) -> None:
        self.predict = predict
        self.inputs: list[np.ndarray] = []

    def __call__(self, batch: np.ndarray) -> Any:
        self.inputs.append(batch.copy())
        return self.predict(batch)


def canvas_run(
    image: np.ndarray, raw: np.ndarray, settings: CanvasSettings, predict: Any
) -> InferSample:
    runner = Runner(image, settings, predict)
    started = time.perf_counter()
    result = runner.run(lambda: choose_seeds(raw, "peaks", settings, 3, (4, 8, 8)))
    seconds = time.perf_counter() - started
    return InferSample(
        image.size / seconds,
        result.stats.fovs,
        result.stats.model_seconds / seconds,
        result.objects,
    )


def replay_seconds(predict: Callable[[np.ndarray], Any], inputs: list[np.ndarray]) -> float:
    """Seconds the bare forward passes of `inputs` take, one after the other."""
    started = time.perf_counter()
    for batch in inputs:
        np.asarray(predict(batch))
    return time.perf_counter() - started


def call_seconds(predict: Callable[[np.ndarray], Any], batch: np.ndarray, calls: int) -> float:
    return replay_seconds(predict, [batch] * calls) / calls


def inference_benchmark(ws: Workspace, dataset: Dataset, sizes: Sizes, log: Log) -> Result:
    from unem.ffn.options import parse_box

    model, info = load_ffn_model(ws, MODEL_NAME)
    box = parse_box(sizes.box, dataset.shape)
    raw = read_box(ws, dataset.id, "image", box)
    image = normalise(raw, info["image_mean"], info["image_std"])
    fov = (int(info["fov"][0]), int(info["fov"][1]), int(info["fov"][2]))
    deltas = (int(info["deltas"][0]), int(info["deltas"][1]), int(info["deltas"][2]))
    settings = CanvasSettings(fov=fov, deltas=deltas, min_segment_size=sizes.min_segment_size)
    predict = keras_predict(model, fov)
    recorder = Recorder(predict)
    first = canvas_run(image, raw, settings, recorder)  # traces the call, records the inputs
    log(f"    recorded {len(recorder.inputs)} forward passes ({first.objects} objects)")
    runs: list[InferSample] = []
    replays: list[float] = []
    for _ in range(sizes.infer_repeats):
        runs.append(canvas_run(image, raw, settings, predict))
        replays.append(replay_seconds(predict, recorder.inputs))
        log(f"    canvas: {runs[-1].voxels_per_second:.3g} voxels/s, {runs[-1].fovs} FOVs")
    batch = recorder.inputs[len(recorder.inputs) // 2]
    call = statistics.median(replays) / max(len(recorder.inputs), 1)
    predict_on_batch = call_seconds(model.predict_on_batch, batch, sizes.on_batch_calls)
    note = (
        f"box {'×'.join(str(s) for s in image.shape)} of the training volume, {first.fovs} "
        f"forward passes and {first.objects} objects per run; baseline: the same inputs "
        f"replayed through the same traced call, {call * 1000:.1f} ms each (predict_on_batch "
        f"{predict_on_batch * 1000:.1f} ms); the canvas measured "
        f"{statistics.median(r.model_share for r in runs):.2f} of its time in the model"
    )
    return Result(
        f"FFN inference voxels/s, {sizes.preset}",
        "voxels/s",
        [r.voxels_per_second for r in runs],
        [image.size / seconds for seconds in replays],
        Target("ratio", True, 0.7),
        note=note,
    )
