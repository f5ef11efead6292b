"""Training a flood-filling network (google/ffn's `train.py`, re-implemented).

Each of the `batch_size` slots of a batch follows one *FOV sequence*: a training patch of
fov + 2·deltas·moves voxels around a prepared coordinate, its soft object mask (0.95 on the
object under the centre, 0.05 elsewhere) and a seed canvas of the same size that starts as
a single 0.95 voxel at the centre. The sequence's movement policy yields FOV offsets; each
step trains on the FOVs of all slots at once, and the network's output (logits, computed
before the weight update, as in google/ffn) is written back into each slot's canvas, so the
next FOV of that sequence starts from what the network has already filled in:

- `fixed`: the centre, then the 26 shifts by ±deltas in random order, each taken only if the
  canvas at the new centre has reached `move_threshold`;
- `max_pred_moves`: the inference policy: on each of the 6 faces at ±deltas of the FOV, the
  voxel of highest probability, if above the threshold, is queued (best first); positions
  are quantised to the deltas grid so none is visited twice; moves stay within
  deltas·fov_moves of the patch centre, and, as google/ffn does when training, a move off
  the true object is not followed.

Moves are scored like google/ffn's tracker: *correct* (wanted and taken), *spurious* (taken
though the target is not the object) and *missed* (the object is there but the canvas did
not reach the threshold). A slot whose sequence ends starts a new one at another
coordinate; its final canvas is evaluated and shown in TensorBoard (xy/xz/yz planes
through the centre: image | target | prediction).

Checkpoints (`checkpoints/ckpt-<step>/`: weights, optimizer state, step and random state)
are written every `checkpoint_every` steps; a resumed job continues from the latest one
(sequences in flight start afresh). Keras and TensorFlow are imported inside the functions
that need them, so the policies above are importable (and tested) without them.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from unem.errors import BadInput
from unem.ffn.options import LABEL_SOFT, FFNModelOptions, FFNTrainOptions, logit
from unem.ffn.prep import Preparation, get_preparation, read_image
from unem.workspace import Workspace

Metrics = Mapping[str, float]
Offset = tuple[int, int, int]
REPORT_SECONDS = 1.0  # progress (step and loss) at most once a second between summaries
KEEP_CHECKPOINTS = 2


# --- patches and augmentation -----------------------------------------------------------


def crop(volume: np.ndarray, centre: Offset, shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """The box of `shape` centred on `centre` (z, y, x); outside the volume is `fill`."""
    start = [c - s // 2 for c, s in zip(centre, shape, strict=True)]
    inside = tuple(
        slice(max(a, 0), min(a + s, n)) for a, s, n in zip(start, shape, volume.shape, strict=True)
    )
    data = volume[inside]
    if data.shape == tuple(shape):
        return data.copy()
    out = np.full(shape, fill, dtype=volume.dtype)
    out[tuple(slice(i.start - a, i.stop - a) for i, a in zip(inside, start, strict=True))] = data
    return out


def object_targets(labels: np.ndarray) -> np.ndarray:
    """Soft targets of a patch: 0.95 on the object under the centre voxel, 0.05 elsewhere
    (and everywhere when the centre is background)."""
    centre = labels[tuple(s // 2 for s in labels.shape)]
    inside = (labels == centre) & (labels != 0)
    low, high = LABEL_SOFT
    return np.where(inside, high, low).astype(np.float32)


@dataclass(frozen=True)
class Transform:
    """An axis permutation and reflections of (z, y, x) arrays."""

    order: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        moved = np.transpose(array, self.order)
        flipped = [axis for axis, flip in enumerate(self.flips) if flip]
        return np.ascontiguousarray(np.flip(moved, tuple(flipped)) if flipped else moved)


def permutable_axes(mode: str, model: FFNModelOptions, voxel_size: list[float]) -> tuple[int, ...]:
    """The axes that may be swapped: y and x (unless `none`); z too only when isotropic
    (`auto`: FOV, deltas and voxels; `xyz`: FOV and deltas, the user vouches for voxels)."""
    iso_voxels = max(voxel_size) <= 1.25 * min(voxel_size)
    if mode == "auto":
        mode = "xyz" if model.isotropic and iso_voxels else "xy"
    axes = {"none": (), "xy": (1, 2), "xyz": (0, 1, 2)}[mode]
    shapes = {(model.fov[a], model.deltas[a]) for a in axes}
    if len(shapes) > 1:
        raise BadInput(
            f"Axes {'zyx'[axes[0]]}… cannot be swapped: their FOV and deltas differ "
            f"(FOV {list(model.fov)}, deltas {list(model.deltas)})."
        )
    return axes


def random_transform(rng: np.random.Generator, axes: tuple[int, ...], reflect: bool) -> Transform:
    order = [0, 1, 2]
    if len(axes) > 1:
        shuffled = rng.permutation(axes)
        for axis, new in zip(axes, shuffled, strict=True):
            order[axis] = int(new)
    flips = tuple(bool(f) for f in rng.integers(0, 2, 3)) if reflect else (False,) * 3
    return Transform((order[0], order[1], order[2]), (flips[0], flips[1], flips[2]))


# --- FOV sequences and movement policies ---------------------------------------------------


@dataclass
class MoveStats:
    """Moves as google/ffn's tracker counts them, and FOVs per sequence."""

    correct: int = 0
    spurious: int = 0
    missed: int = 0
    sequences: int = 0
    fovs: int = 0

    def record(self, wanted: bool, valid: bool) -> None:
        self.correct += wanted and valid
        self.spurious += valid and not wanted
        self.missed += wanted and not valid


@dataclass
class FovSequence:
    """One training patch, its soft targets and the seed canvas the network fills in."""

    image: np.ndarray  # (z, y, x) float32, normalised
    targets: np.ndarray  # (z, y, x) float32, 0.05 / 0.95
    seed: np.ndarray  # (z, y, x) float32 logits
    fov: tuple[int, int, int]
    visited: int = 0

    @property
    def centre(self) -> np.ndarray:
        return np.array(self.seed.shape) // 2

    def window(self, offset: Offset) -> tuple[slice, slice, slice]:
        """The FOV centred `offset` away from the patch centre."""
        start = self.centre + np.array(offset) - np.array(self.fov) // 2
        z, y, x = (slice(int(a), int(a) + s) for a, s in zip(start, self.fov, strict=True))
        return (z, y, x)

    def inputs(self, offset: Offset) -> np.ndarray:
        """(z, y, x, 2) image and seed of the FOV at `offset`."""
        box = self.window(offset)
        return np.stack([self.image[box], self.seed[box]], axis=-1)

    def update(self, offset: Offset, logits: np.ndarray) -> None:
        self.seed[self.window(offset)] = logits
        self.visited += 1

    def at(self, offset: Offset) -> tuple[float, float]:
        """The seed logit and the target at `offset` from the centre."""
        point = tuple(int(c + o) for c, o in zip(self.centre, offset, strict=True))
        return float(self.seed[point]), float(self.targets[point])


def fov_shifts(deltas: list[int] | tuple[int, ...]) -> list[Offset]:
    """The 26 moves by ±deltas (z, y, x), without the null move."""
    steps = [(-d, 0, d) for d in deltas]
    return [(z, y, x) for z, y, x in itertools.product(*steps) if (z, y, x) != (0, 0, 0)]


def fixed_offsets(
    sequence: FovSequence,
    shifts: list[Offset],
    threshold: float,
    stats: MoveStats,
) -> Iterator[Offset]:
    """The centre, then each shift whose canvas value has reached `threshold` (a
    probability) by the time it is considered."""
    seed_threshold = logit(threshold)
    for offset in [(0, 0, 0), *shifts]:
        seed, target = sequence.at(offset)
        valid, wanted = seed >= seed_threshold, target >= threshold
        stats.record(wanted, valid)
        if valid:
            yield offset


def face_moves(
    probability: np.ndarray, deltas: list[int] | tuple[int, ...], threshold: float
) -> list[tuple[float, Offset]]:
    """Moves out of one FOV (google/ffn's face-max policy), best first.

    `probability` is the FOV's prediction (z, y, x; probabilities or logits with `threshold`
    on the same scale). For each axis with a non-zero delta and each direction, the face at
    ±delta from the centre, limited to ±deltas on the other axes, is searched for its
    maximum; if it reaches `threshold`, the move to that voxel (relative to the centre) is
    returned with its score."""
    centre = np.array(probability.shape) // 2
    near = [slice(c - d, c + d + 1) for c, d in zip(centre, deltas, strict=True)]
    found: dict[Offset, float] = {}
    for axis, delta in enumerate(deltas):
        for step in (-delta, delta) if delta else ():
            face_box = list(near)
            face_box[axis] = slice(centre[axis] + step, centre[axis] + step + 1)
            face = probability[tuple(face_box)]
            best = np.unravel_index(int(np.argmax(face)), face.shape)
            score = float(face[best])
            if score < threshold:
                continue
            move = [int(b) - (s // 2) for b, s in zip(best, face.shape, strict=True)]
            move[axis] = step
            found.setdefault((move[0], move[1], move[2]), score)
    return sorted(((s, m) for m, s in found.items()), reverse=True)


def max_pred_offsets(
    sequence: FovSequence,
    deltas: list[int],
    max_radius: tuple[int, int, int],
    threshold: float,
    stats: MoveStats,
) -> Iterator[Offset]:
    """The inference movement policy inside a training patch (see the module docstring).

    After each yield the caller has written the FOV's prediction into the canvas, which
    this generator reads to queue the next moves."""
    seed_threshold = logit(threshold)
    queue: deque[Offset] = deque([(0, 0, 0)])
    done: set[tuple[int, ...]] = set()
    steps = np.maximum(np.array(deltas), 1)
    while queue:
        offset = queue.popleft()
        if any(abs(o) > r for o, r in zip(offset, max_radius, strict=True)):
            continue
        cell = tuple(int(q) for q in (np.array(offset) + steps // 2) // steps)
        if cell in done:
            continue
        seed, target = sequence.at(offset)
        valid, wanted = seed >= seed_threshold, target >= threshold
        stats.record(wanted, valid)
        if not valid or (not wanted and offset != (0, 0, 0)):
            continue
        done.add(cell)
        yield offset
        fov_seed = sequence.seed[sequence.window(offset)]
        for _, move in face_moves(fov_seed, deltas, seed_threshold):
            queue.append((offset[0] + move[0], offset[1] + move[1], offset[2] + move[2]))


# --- training data ---------------------------------------------------------------------


@dataclass
class TrainingVolume:
    """A preparation's box in memory: normalised image, labels, coordinates in its frame."""

    image: np.ndarray
    labels: np.ndarray
    coordinates: np.ndarray
    voxel_size: list[float]


def load_training_volume(ws: Workspace, preparation: Preparation) -> TrainingVolume:
    info = preparation.info
    labels, _ = preparation.volume()
    raw = read_image(ws, info["dataset"], info["image_layer"], preparation.box)
    image = ((raw.astype(np.float32) - info["image_mean"]) / info["image_std"]).astype(np.float32)
    origin = np.array([s.start for s in preparation.box])
    coordinates = np.asarray(preparation.coordinates()) - origin
    return TrainingVolume(image, labels, coordinates, list(info["voxel_size"]))


@dataclass
class Slot:
    sequence: FovSequence
    offsets: Iterator[Offset]
    offset: Offset = (0, 0, 0)


@dataclass
class FinishedSequence:
    image: np.ndarray
    targets: np.ndarray
    seed: np.ndarray


class BatchSampler:
    """Batches of FOVs from `batch_size` independent FOV sequences (module docstring)."""

    def __init__(
        self,
        data: TrainingVolume,
        model: FFNModelOptions,
        options: FFNTrainOptions,
        rng: np.random.Generator,
    ) -> None:
        self.data, self.model, self.options, self.rng = data, model, options, rng
        self.fov = (model.fov[0], model.fov[1], model.fov[2])
        moves = options.fov_moves if options.fov_policy == "max_pred_moves" else 1
        self.max_radius = (
            model.deltas[0] * moves,
            model.deltas[1] * moves,
            model.deltas[2] * moves,
        )
        self.patch = tuple(f + 2 * r for f, r in zip(self.fov, self.max_radius, strict=True))
        self.axes = permutable_axes(options.augment.permute, model, data.voxel_size)
        self.stats = MoveStats()  # since the last summary
        self.totals = MoveStats()  # sequences and FOVs of this run
        self.finished: deque[FinishedSequence] = deque(maxlen=4)
        self.slots = [self._new_slot() for _ in range(options.batch_size)]

    def new_sequence(self) -> FovSequence:
        from unem.ffn.model import initial_seed

        index = int(self.rng.integers(len(self.data.coordinates)))
        centre = tuple(int(c) for c in self.data.coordinates[index])
        transform = random_transform(self.rng, self.axes, self.options.augment.reflect)
        image = transform(crop(self.data.image, (centre[0], centre[1], centre[2]), self.patch))
        labels = transform(crop(self.data.labels, (centre[0], centre[1], centre[2]), self.patch))
        # Only axes of equal FOV and deltas are swapped: the FOV keeps its shape.
        return FovSequence(image, object_targets(labels), initial_seed(image.shape), self.fov)

    def _offsets(self, sequence: FovSequence) -> Iterator[Offset]:
        threshold = self.options.move_threshold
        deltas = list(self.model.deltas)
        if self.options.fov_policy == "fixed":
            shifts = fov_shifts(deltas)
            order = self.rng.permutation(len(shifts))
            return fixed_offsets(sequence, [shifts[i] for i in order], threshold, self.stats)
        return max_pred_offsets(sequence, deltas, self.max_radius, threshold, self.stats)

    def _new_slot(self) -> Slot:
        sequence = self.new_sequence()
        offsets = self._offsets(sequence)
        # The centre is always valid: the seed starts at 0.95 ≥ any threshold < 0.95.
        return Slot(sequence, offsets, next(offsets, (0, 0, 0)))

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (b, z, y, x, 2) and targets (b, z, y, x, 1) of the slots' current FOVs."""
        inputs = np.stack([s.sequence.inputs(s.offset) for s in self.slots])
        targets = np.stack([s.sequence.targets[s.sequence.window(s.offset)] for s in self.slots])
        return inputs, targets[..., None]

    def update(self, logits: np.ndarray) -> None:
        """Write each slot's prediction into its canvas and move it on (or start anew)."""
        for i, slot in enumerate(self.slots):
            slot.sequence.update(slot.offset, logits[i, ..., 0])
            following = next(slot.offsets, None)
            if following is None:
                self._finish(slot.sequence)
                self.slots[i] = self._new_slot()
            else:
                slot.offset = following

    def _finish(self, sequence: FovSequence) -> None:
        for stats in (self.stats, self.totals):
            stats.sequences += 1
            stats.fovs += sequence.visited
        self.finished.append(FinishedSequence(sequence.image, sequence.targets, sequence.seed))


# --- evaluation and TensorBoard -------------------------------------------------------------


@dataclass
class Tracker:
    """Scores accumulated between two summaries."""

    loss: float = 0.0
    steps: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))

    def add(self, loss: float, logits: np.ndarray, targets: np.ndarray) -> None:
        self.loss += loss
        self.steps += 1
        predicted, true = logits >= 0, targets > 0.5
        self.counts += [
            np.count_nonzero(predicted & true),
            np.count_nonzero(predicted & ~true),
            np.count_nonzero(~predicted & true),
            np.count_nonzero(~predicted & ~true),
        ]

    def metrics(self, stats: MoveStats) -> dict[str, float]:
        tp, fp, fn, tn = (int(c) for c in self.counts)
        precision = tp / (tp + fp) if tp + fp else math.nan
        recall = tp / (tp + fn) if tp + fn else math.nan
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else math.nan
        return {
            "loss": self.loss / max(self.steps, 1),
            "eval/precision": precision,
            "eval/recall": recall,
            "eval/f1": f1,
            "eval/accuracy": (tp + tn) / max(tp + fp + fn + tn, 1),
            "moves/per_sequence": stats.fovs / stats.sequences if stats.sequences else math.nan,
            "moves/correct": float(stats.correct),
            "moves/spurious": float(stats.spurious),
            "moves/missed": float(stats.missed),
        }


def plane_images(finished: FinishedSequence) -> dict[str, np.ndarray]:
    """xy, xz and yz planes through the patch centre: image | target | prediction, 0–1."""
    from scipy.special import expit

    image = finished.image
    low, high = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    shown = [
        np.clip((image - low) / max(high - low, 1e-6), 0, 1),
        finished.targets,
        expit(finished.seed),
    ]
    centre = [s // 2 for s in image.shape]
    planes = {"final_xy": 0, "final_xz": 1, "final_yz": 2}
    out = {}
    for tag, axis in planes.items():
        cut = [slice(None)] * 3
        cut[axis] = slice(centre[axis], centre[axis] + 1)
        tiles = [np.squeeze(a[tuple(cut)], axis=axis) for a in shown]
        out[tag] = np.concatenate(tiles, axis=1).astype(np.float32)
    return out


# --- the model, its optimizer and checkpoints --------------------------------------------------


def make_optimizer(options: FFNTrainOptions) -> Any:
    import keras

    clip: dict[str, float] = {}
    if options.clip == "value":
        clip = {"clipvalue": options.clip_value}
    elif options.clip == "norm":
        clip = {"clipnorm": options.clip_value}
    if options.optimizer == "adam":
        return keras.optimizers.Adam(
            options.learning_rate,
            beta_1=options.adam_beta1,
            beta_2=options.adam_beta2,
            epsilon=options.adam_epsilon,
            **clip,
        )
    return keras.optimizers.SGD(options.learning_rate, momentum=options.momentum, **clip)


class Trainer:
    """A model, its optimizer and a compiled step returning the loss and the logits the
    model gave *before* its weights were updated (what the FOV sequences need)."""

    def __init__(self, model: Any, optimizer: Any) -> None:
        import tensorflow as tf

        self.model, self.optimizer = model, optimizer
        self.optimizer.build(model.trainable_variables)
        weights = model.trainable_variables

        @tf.function(jit_compile=False, reduce_retracing=True)  # type: ignore[untyped-decorator]
        def step(inputs: Any, targets: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                logits = model(inputs, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
                )
            gradients = tape.gradient(loss, weights)
            optimizer.apply_gradients(zip(gradients, weights, strict=True))
            return loss, logits

        self._step = step

    def step(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        loss, logits = self._step(inputs, targets)
        value = float(loss)
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss is {value}: lower the learning rate")
        return value, np.asarray(logits)

    def save(self, folder: Path, state: dict[str, Any]) -> None:
        """A checkpoint in `folder` (written aside, renamed into place)."""
        staged = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        self.model.save_weights(staged / "model.weights.h5")
        variables = {f"v{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        np.savez(staged / "optimizer.npz", **variables)
        (staged / "state.json").write_text(json.dumps(state))
        shutil.rmtree(folder, ignore_errors=True)
        staged.rename(folder)

    def restore(self, folder: Path) -> dict[str, Any]:
        self.model.load_weights(folder / "model.weights.h5")
        with np.load(folder / "optimizer.npz") as saved:
            for i, variable in enumerate(self.optimizer.variables):
                variable.assign(saved[f"v{i}"])
        state: dict[str, Any] = json.loads((folder / "state.json").read_text())
        return state


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("ckpt-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def prune_checkpoints(folder: Path, keep: int = KEEP_CHECKPOINTS) -> None:
    found = sorted(folder.glob("ckpt-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# --- the training job ----------------------------------------------------------------------


@dataclass
class TrainRun:
    """Where a training run writes, and whom it tells."""

    folder: Path  # the job's folder: checkpoints/ and tensorboard/ go here
    progress: Callable[[int, int, str, Metrics], None]
    log: Callable[[str], None] = print
    resume: bool = False
    name: str = "ffn"
    stop_after: int | None = None  # tests: stop (as if cancelled) after this step

    @property
    def checkpoints(self) -> Path:
        path = self.folder / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path


def check_geometry(
    preparation: Preparation, model: FFNModelOptions, log: Callable[[str], None]
) -> None:
    prepared = preparation.info.get("lom_radius", [0, 0, 0])
    needed = model.lom_radius
    if any(p < f // 2 for p, f in zip(prepared, model.fov, strict=True)):
        raise BadInput(
            f"Preparation {preparation.name!r} keeps a margin of {prepared} (z, y, x): too "
            f"small for a FOV of {list(model.fov)}; prepare again with this FOV."
        )
    if any(p < n for p, n in zip(prepared, needed, strict=True)):
        log(
            f"warning: the preparation's margin {prepared} is under fov//2 + deltas "
            f"{list(needed)}: patches near the box's edge are padded with background"
        )


def train_ffn(ws: Workspace, options: FFNTrainOptions, run: TrainRun) -> dict[str, Any]:
    """Train an FFN on a preparation; save it as a trained model; say how it went."""
    import keras

    from unem.ffn.model import build_ffn, model_info, save_ffn_model

    preparation = get_preparation(ws, options.preparation)
    geometry = options.model_options()
    check_geometry(preparation, geometry, run.log)
    data = load_training_volume(ws, preparation)
    keras.utils.set_random_seed(options.seed)
    trainer = Trainer(build_ffn(geometry), make_optimizer(options))
    rng = np.random.default_rng(options.seed)
    step = _resume(trainer, rng, run)
    sampler = BatchSampler(data, geometry, options, rng)
    started, done_before = time.monotonic(), step
    step = _loop(trainer, sampler, options, run, step)
    seconds = time.monotonic() - started
    info = model_info(
        geometry,
        preparation.info["image_mean"],
        preparation.info["image_std"],
        preset=options.preset,
        move_threshold=options.move_threshold,
        dataset=preparation.info["dataset"],
        image_layer=preparation.info["image_layer"],
        preparation=preparation.name,
        steps=step,
        training=options.model_dump(),
    )
    if step >= options.steps:
        save_ffn_model(ws, run.name, trainer.model, info)
    return {
        "model": run.name if step >= options.steps else None,
        "steps": step,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(step - done_before, 1), 4),
        "moves_per_sequence": round(sampler.totals.fovs / max(sampler.totals.sequences, 1), 2),
    }


def _resume(trainer: Trainer, rng: np.random.Generator, run: TrainRun) -> int:
    latest = latest_checkpoint(run.checkpoints) if run.resume else None
    if latest is None:
        return 0
    state = trainer.restore(latest)
    rng.bit_generator.state = state["rng"]
    run.log(f"resumed from {latest.name} at step {state['step']}")
    return int(state["step"])


def _loop(
    trainer: Trainer, sampler: BatchSampler, options: FFNTrainOptions, run: TrainRun, step: int
) -> int:
    tracker, last_report = Tracker(), 0.0
    images = ImageWriter(run.folder / "tensorboard" / "images")
    last = min(options.steps, run.stop_after) if run.stop_after is not None else options.steps
    while step < last:
        inputs, targets = sampler.batch()
        loss, logits = trainer.step(inputs, targets)
        sampler.update(logits)
        tracker.add(loss, logits, targets)
        step += 1
        if step % options.checkpoint_every == 0 or step == options.steps:
            state = {"step": step, "rng": sampler.rng.bit_generator.state}
            trainer.save(run.checkpoints / f"ckpt-{step}", state)
            prune_checkpoints(run.checkpoints)
        if step % options.summary_every == 0 or step == options.steps:
            metrics = tracker.metrics(sampler.stats)
            run.progress(step, options.steps, f"step {step}: loss {metrics['loss']:.4f}", metrics)
            if sampler.finished:
                images.write(step, plane_images(sampler.finished[-1]))
            tracker, sampler.stats = Tracker(), MoveStats()
        elif time.monotonic() - last_report > REPORT_SECONDS:
            run.progress(step, options.steps, f"step {step}: loss {loss:.4f}", {"loss": loss})
            last_report = time.monotonic()
    images.close()
    return step


class ImageWriter:
    """TensorBoard image summaries (TensorFlow's writer, opened on first use)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.writer = folder, cast(Any, None)

    def write(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        import tensorflow as tf

        if self.writer is None:
            self.writer = tf.summary.create_file_writer(str(self.folder))
        with self.writer.as_default(step=step):
            for tag, image in images.items():
                tf.summary.image(tag, image[None, ..., None])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
