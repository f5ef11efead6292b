"""FFN inference on a dataset: seeds, one or two canvas passes, consensus, output layers.

- Seeds: `peaks` (google/ffn `PolicyPeaks`) or `grid`, on the image box.
- Forward pass: a `Canvas` tries every seed in order.
- Optional reverse pass (`consensus="split"`): a fresh canvas seeded at the forward pass's
  object origins, newest first (`PolicyInvertOrigins`); then `split_consensus`.
- Checkpoints: between seeds, at most every `checkpoint_seconds`, the whole run state
  (pass, canvas state, forward result, time spent) goes to one `.npz` file in the job's
  checkpoint folder, replaced atomically. A resumed job restores it and ends with exactly
  the segmentation an uninterrupted one makes.
- Output: the dataset's `segmentation` replaced through `unem.proofread.replace` (the old
  one kept as a layer, proofreading state archived and reset, fragments indexed), or a new
  layer; and a probability layer (kind prediction, uint8) if asked.

Keras is imported only inside `keras_predict` and `infer_dataset` (worker processes); the
rest is NumPy, tested with fake models.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unem.ffn.canvas import Canvas, CanvasSettings, CanvasState, CanvasStats, Predict
from unem.ffn.policies import Zyx, grid_seeds, inside, inverse_origins, peak_seeds

if TYPE_CHECKING:
    from unem.ffn.infer_jobs import FFNInferJobOptions
    from unem.workspace import Workspace

Report = Callable[[int, int, str, dict[str, float]], None]  # JobContext.progress
CHECKPOINT = "ffn-canvas.npz"
REPORT_SECONDS = 1.0
PASS_NAMES = ("forward", "reverse")
FINAL_METRICS = ("objects", "voxels_per_second", "model_share", "fovs_per_second")


# Consensus -----------------------------------------------------------------------------


def split_consensus(forward: np.ndarray, reverse: np.ndarray, min_size: int) -> np.ndarray:
    """Oversegmentation consensus of two segmentations (google/ffn `CONSENSUS_SPLIT`).

    Every voxel of a forward object gets the id of its (forward id, reverse id) pair — a
    reverse id of 0 included — so an object is split wherever the passes disagree and kept
    whole where they agree. Pieces under `min_size` voxels become 0; the others are
    numbered 1, 2, … in the order of their (forward, reverse) pairs. Inputs are unchanged.
    """
    if forward.shape != reverse.shape:
        raise ValueError(f"shapes differ: {forward.shape} and {reverse.shape}")
    inside_forward = forward > 0
    if forward.size and max(int(forward.max()), int(reverse.max())) >= 2**32:
        raise ValueError("consensus needs ids below 2**32")
    pairs = forward[inside_forward].astype(np.uint64) << np.uint64(32)
    keys = pairs | reverse[inside_forward].astype(np.uint64)
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    kept = counts >= max(min_size, 1)
    new_ids = np.zeros(len(unique), dtype=np.uint64)
    new_ids[kept] = np.arange(1, int(kept.sum()) + 1, dtype=np.uint64)
    out = np.zeros(forward.shape, dtype=np.uint64)
    out[inside_forward] = new_ids[inverse.reshape(-1)]
    return out


# Checkpoints ---------------------------------------------------------------------------


@dataclass
class RunState:
    """Where a run stands between two seeds: which pass, its canvas, the forward result."""

    pass_index: int  # 0 forward, 1 reverse
    canvas: CanvasState
    forward: CanvasState | None = None  # while in the reverse pass
    seconds: float = 0.0  # wall time spent in the passes so far


@dataclass(frozen=True)
class Checkpoints:
    """The run's checkpoint file; one of another run (`fingerprint`) is never restored."""

    folder: Path
    fingerprint: str
    seconds: float = 300.0  # between saves; 0 saves after every seed

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT

    def save(self, state: RunState) -> None:
        """Write atomically: a crash while saving leaves the previous checkpoint."""
        meta = {"fingerprint": self.fingerprint, "pass": state.pass_index, "seconds": state.seconds}
        arrays: dict[str, Any] = state.canvas.to_arrays("canvas.")
        if state.forward is not None:
            arrays.update(state.forward.to_arrays("forward."))
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial.npz")
        with open(partial, "wb") as file:
            np.savez_compressed(file, meta=np.asarray(json.dumps(meta)), **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, self.path)

    def load(self) -> RunState | None:
        """The saved state, or None if there is none (or it belongs to another run)."""
        if not self.path.exists():
            return None
        with np.load(self.path) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("fingerprint") != self.fingerprint:
                return None
            forward = CanvasState.from_arrays(data, "forward.") if "forward.seeds" in data else None
            return RunState(
                int(meta["pass"]),
                CanvasState.from_arrays(data, "canvas."),
                forward,
                float(meta["seconds"]),
            )

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def fingerprint(*parts: Any) -> str:
    """A short digest of what a run segments (options, model, box)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The passes ----------------------------------------------------------------------------


@dataclass
class Segmented:
    """A run's result over the canvas box."""

    segmentation: np.ndarray  # uint64 (z, y, x)
    probability: np.ndarray  # uint8 (z, y, x)
    stats: CanvasStats  # both passes together
    passes: list[CanvasStats]
    seconds: float  # wall time of the passes (all runs of a resumed job)

    @property
    def objects(self) -> int:
        return len(np.unique(self.segmentation[self.segmentation > 0]))

    def summary(self) -> dict[str, Any]:
        voxels = int(self.segmentation.size)
        seconds = max(self.seconds, 1e-9)
        return {
            "objects": self.objects,
            "voxels": voxels,
            "seconds": round(self.seconds, 3),
            "voxels_per_second": round(voxels / seconds, 1),
            "model_seconds": round(self.stats.model_seconds, 3),
            "model_share": round(self.stats.model_seconds / seconds, 4),
            "fovs": self.stats.fovs,
            "fovs_per_second": round(self.stats.fovs / seconds, 2),
            "passes": [stats.to_json() for stats in self.passes],
        }


class Runner:
    """Runs the passes of one segmentation, checkpointing and reporting between seeds."""

    def __init__(
        self,
        image: np.ndarray,
        settings: CanvasSettings,
        predict: Predict,
        consensus: bool = False,
        split_min_size: int = 1000,
        checkpoints: Checkpoints | None = None,
        report: Report | None = None,
    ) -> None:
        self.image = image
        self.settings = settings
        self.predict = predict
        self.consensus = consensus
        self.split_min_size = split_min_size
        self.checkpoints = checkpoints
        self.report = report
        self._spent = 0.0  # seconds of earlier runs (a resumed job)
        self._started = time.monotonic()
        self._saved_at = self._reported_at = self._started
        self._forward: CanvasState | None = None
        self._pass = 0
        self.last_step = (0, 0)  # of the last progress report: (seeds done, total)

    def run(self, seeds: Callable[[], np.ndarray], resume: bool = False) -> Segmented:
        """Segment the image; `seeds()` gives the forward seeds (unused when resuming)."""
        saved = self.checkpoints.load() if (resume and self.checkpoints) else None
        if saved is not None:
            self._spent = saved.seconds
        if saved is None or saved.pass_index == 0:
            forward = self.canvas(seeds() if saved is None else saved.canvas.seeds)
            if saved is not None:
                forward.restore(saved.canvas)
            self.run_pass(forward, 0)
            self._forward = forward.state
        else:
            self._forward = saved.forward
        assert self._forward is not None
        if not self.consensus:
            return self.result(self._forward.segmentation, self._forward.probability, [])
        reverse = self.canvas(inverse_origins(self._forward.origins))
        if saved is not None and saved.pass_index == 1:
            reverse.restore(saved.canvas)
        elif self.checkpoints is not None:
            self.save(reverse, 1)
        self.run_pass(reverse, 1)
        merged = split_consensus(
            self._forward.segmentation, reverse.segmentation, self.split_min_size
        )
        probability = np.where(merged > 0, self._forward.probability, 0).astype(np.uint8)
        return self.result(merged, probability, [reverse.stats])

    def canvas(self, seeds: np.ndarray) -> Canvas:
        return Canvas(self.image, self.settings, self.predict, seeds)

    def run_pass(self, canvas: Canvas, index: int) -> None:
        self._pass = index
        canvas.segment_all(self.after_seed)
        self.send(canvas)

    def after_seed(self, canvas: Canvas) -> None:
        now = time.monotonic()
        if self.checkpoints is not None and now - self._saved_at >= self.checkpoints.seconds:
            self.save(canvas, self._pass)
        if now - self._reported_at >= REPORT_SECONDS:
            self.send(canvas)

    def seconds(self) -> float:
        return self._spent + time.monotonic() - self._started

    def save(self, canvas: Canvas, index: int) -> None:
        assert self.checkpoints is not None
        forward = self._forward if index == 1 else None
        self.checkpoints.save(RunState(index, canvas.state, forward, self.seconds()))
        self._saved_at = time.monotonic()

    def send(self, canvas: Canvas) -> None:
        """Progress: seeds done of (an estimate of) both passes, and the rates."""
        if self.report is None:
            return
        self._reported_at = time.monotonic()
        state, stats = canvas.state, canvas.stats
        done, total = state.next_seed, len(state.seeds)
        if self._pass == 1:
            assert self._forward is not None
            first = len(self._forward.seeds)
            done, total = done + first, total + first
        elif self.consensus:  # the reverse pass will try about one seed per object
            total += round(stats.objects * total / max(done, 1))
        seconds = max(self.seconds(), 1e-9)
        earlier = [self._forward.stats] if self._pass == 1 and self._forward else []
        all_stats = add_stats([*earlier, stats])
        metrics = {
            "objects": float(stats.objects),
            "fovs_per_second": all_stats.fovs / seconds,
            "segmented_voxels_per_second": all_stats.voxels / seconds,
            "model_share": all_stats.model_seconds / seconds,
        }
        message = f"{PASS_NAMES[self._pass]} pass: seed {state.next_seed}/{len(state.seeds)}, "
        self.last_step = (done, max(total, done))
        self.report(*self.last_step, message + f"{stats.objects} objects", metrics)

    def result(
        self, segmentation: np.ndarray, probability: np.ndarray, later: list[CanvasStats]
    ) -> Segmented:
        assert self._forward is not None
        passes = [self._forward.stats, *later]
        return Segmented(segmentation, probability, add_stats(passes), passes, self.seconds())


def add_stats(passes: Sequence[CanvasStats]) -> CanvasStats:
    total = CanvasStats()
    for stats in passes:
        for key, value in vars(stats).items():
            setattr(total, key, getattr(total, key) + value)
    return total


# Seeds and model -----------------------------------------------------------------------


def choose_seeds(
    image: np.ndarray, policy: str, settings: CanvasSettings, min_distance: int, step: Zyx
) -> np.ndarray:
    """The forward pass's seeds, those without a full field of view around them dropped."""
    margin = settings.margin
    if policy == "grid":
        seeds = grid_seeds(image.shape, step, tuple(int(m) for m in margin))
    elif policy == "peaks":
        seeds = peak_seeds(image, min_distance)
    else:
        raise ValueError(f"unknown seed policy {policy!r}")
    return inside(seeds, image.shape, margin)


def keras_predict(model: Any, fov: Sequence[int]) -> Predict:
    """A cheap single-FOV call of a Keras FFN model: one traced `tf.function` on the
    TensorFlow backend (`model.predict`'s per-call set-up would cost more than the
    convolutions), `predict_on_batch` on other backends."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda batch: np.asarray(model.predict_on_batch(batch))
    import tensorflow as tf

    spec = tf.TensorSpec((1, *fov, 2), tf.float32)
    call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return lambda batch: np.asarray(call(tf.constant(batch)))


# The job -------------------------------------------------------------------------------


def canvas_settings(options: FFNInferJobOptions, info: dict[str, Any]) -> CanvasSettings:
    from unem.ffn.options import SEED_INIT, SEED_PAD

    def triple(values: Sequence[int]) -> Zyx:
        z, y, x = (int(v) for v in values)
        return (z, y, x)

    return CanvasSettings(
        fov=triple(info["fov"]),
        deltas=triple(info["deltas"]),
        init_activation=float(info.get("seed_init", SEED_INIT)),
        pad_value=float(info.get("seed_pad", SEED_PAD)),
        move_threshold=options.move_threshold,
        segment_threshold=options.segment_threshold,
        min_segment_size=options.min_segment_size,
        min_boundary_dist=triple(options.min_boundary_dist),
    )


def image_statistics(options: FFNInferJobOptions, info: dict[str, Any]) -> tuple[float, float]:
    """The normalisation: the options' if given, else what the model was trained with."""
    mean = options.image_mean if options.image_mean is not None else info.get("image_mean")
    std = options.image_std if options.image_std is not None else info.get("image_std")
    return float(128.0 if mean is None else mean), float(33.0 if std is None else std)


def read_box(ws: Workspace, dataset_id: str, layer_name: str, box: tuple[slice, ...]) -> np.ndarray:
    from unem.volumes.datasets import get_dataset
    from unem.volumes.store import open_level

    layer = get_dataset(ws, dataset_id).layer(layer_name)
    return np.asarray(open_level(layer.path, layer.levels[0].path)[box])


def normalise(raw: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(raw − mean) / std as float32, as the model was trained."""
    image: np.ndarray = (raw.astype(np.float32) - np.float32(mean)) / np.float32(std)
    return image


def full_planes(
    values: np.ndarray, box: tuple[slice, ...], shape: Sequence[int], dtype: str
) -> Iterator[np.ndarray]:
    """Every slice of a dataset of `shape`: `values` inside `box`, 0 elsewhere."""
    zs, ys, xs = box
    for z in range(int(shape[0])):
        plane = np.zeros(tuple(shape[1:]), dtype=dtype)
        if zs.start <= z < zs.stop:
            plane[ys, xs] = values[z - zs.start]
        yield plane


@dataclass(frozen=True)
class JobRun:
    """What a job gives inference: where to checkpoint, whether to resume, whom to tell."""

    checkpoint_dir: Path
    resume: bool = False
    report: Report | None = None
    log: Callable[[str], None] = print
    user: str = "admin"


def infer_dataset(ws: Workspace, options: FFNInferJobOptions, run: JobRun) -> dict[str, Any]:
    """Segment a dataset (or a box of it) with a trained FFN and write the output layers."""
    from unem.ffn.model import load_ffn_model
    from unem.ffn.options import parse_box
    from unem.volumes.datasets import get_dataset

    dataset = get_dataset(ws, options.dataset)
    box = parse_box(options.box, dataset.shape)
    model, info = load_ffn_model(ws, options.model)
    settings = canvas_settings(options, info)
    mean, std = image_statistics(options, info)
    raw = read_box(ws, options.dataset, options.image_layer, box)
    image = normalise(raw, mean, std)
    step = (int(options.grid_step[0]), int(options.grid_step[1]), int(options.grid_step[2]))
    key = fingerprint(options.model_dump(), info.get("fov"), info.get("deltas"), mean, std)
    checkpoints = Checkpoints(run.checkpoint_dir, key, options.checkpoint_seconds)
    runner = Runner(
        image,
        settings,
        keras_predict(model, settings.fov),
        options.consensus == "split",
        options.split_min_size,
        checkpoints,
        run.report,
    )
    result = runner.run(
        lambda: choose_seeds(raw, options.seed_policy, settings, options.peaks_min_distance, step),
        resume=run.resume,
    )
    run.log(f"ffn: {json.dumps(result.summary())}")
    written = write_outputs(ws, options, dataset.shape, box, result, run)
    checkpoints.remove()  # the output is written: nothing is left to resume
    summary = result.summary()
    if run.report is not None:  # the job's final metrics (the writing reported none)
        metrics = {key: float(summary[key]) for key in FINAL_METRICS}
        run.report(*runner.last_step, f"done: {summary['objects']} objects", metrics)
    return {**summary, **written}


def write_outputs(
    ws: Workspace,
    options: FFNInferJobOptions,
    shape: Sequence[int],
    box: tuple[slice, ...],
    result: Segmented,
    run: JobRun,
) -> dict[str, Any]:
    """The segmentation (replacing the dataset's, or a new layer), then the probabilities."""
    from unem.proofread.replace import replace_segmentation
    from unem.volumes.layers import add_layer

    def progress(step: int, total: int, message: str = "") -> None:
        if run.report is not None:
            run.report(step, total, message, {})

    source = f"ffn {options.model} ({options.seed_policy} seeds, consensus {options.consensus})"
    labels = full_planes(result.segmentation, box, shape, "uint32")
    written: dict[str, Any] = {"dataset": options.dataset, "layer": options.output}
    if options.replaces_segmentation:
        done = replace_segmentation(ws, options.dataset, labels, source, run.user, progress)
        written.update(kept=done.kept, version=done.version, fragments=done.fragments)
    else:
        add_layer(
            ws,
            options.dataset,
            options.output,
            options.output_kind,
            "uint32",
            labels,
            source,
            options.overwrite,
            progress,
        )
    if options.probabilities:
        name = options.probability_layer()
        planes = full_planes(result.probability, box, shape, "uint8")
        add_layer(
            ws,
            options.dataset,
            name,
            "prediction",
            "uint8",
            planes,
            f"object probabilities of {source}",
            options.overwrite,
            progress,
        )
        written["probability_layer"] = name
    return written
