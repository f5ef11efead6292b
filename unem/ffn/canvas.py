"""The flood-filling canvas: one image volume (or sub-box), segmented object by object.

After google/ffn's `Canvas` (`ffn/inference/inference.py`). For each seed:

1. The object's logit map (`seed`, NaN where nothing was predicted yet) is reset and the
   seed voxel set to logit(`init_activation`).
2. The model runs on the field of view centred at the seed: image and logit map in (NaN
   read as logit(`pad_value`)), logits out, written back over the field of view.
3. The face-max movement policy queues moves by ±deltas where a face of the central
   ±deltas box has a probability ≥ `move_threshold`; each queued position runs step 2 if
   it is still ≥ `move_threshold`, unowned and far enough from the border, and its
   delta-grid cell was not visited. The object stops when the queue is empty, or when the
   seed voxel itself falls below `move_threshold` ("seed got too weak").
4. The object is the voxels ≥ `segment_threshold` that no earlier object owns, reduced to
   the 6-connected component holding the seed; kept with a new id if it has at least
   `min_segment_size` voxels. Voxels an object owns are never given to a later one.

Seeds closer than `min_boundary_dist` (a box, per axis) to an owned voxel, or nearer to
the border than half the field of view, are skipped, as are owned seeds.

`predict` is any function with the FFN model's contract: (b, z, y, x, 2) float32 (channel
0 the normalised image, 1 the logit map) to logits (b, z, y, x, 1) — a Keras model in a
worker (`unem.ffn.inference`), or a NumPy function in tests. This module never imports
Keras. Between two seeds the whole state is a `CanvasState` (the object's logit map is
empty then): a canvas restored from one continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unem.ffn.policies import FaceMaxMovement, Zyx, zyx

Predict = Callable[[np.ndarray], np.ndarray]  # (b, z, y, x, 2) float32 → (b, z, y, x, 1)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def expit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1 / (1 + np.exp(-x))
    return out


@dataclass(frozen=True)
class CanvasSettings:
    """google/ffn's `InferenceOptions`, as probabilities; every triple is (z, y, x)."""

    fov: Zyx
    deltas: Zyx
    init_activation: float = 0.95
    pad_value: float = 0.05
    move_threshold: float = 0.9
    segment_threshold: float = 0.6
    min_segment_size: int = 1000
    min_boundary_dist: Zyx = (1, 1, 1)

    def __post_init__(self) -> None:
        if any(f % 2 == 0 or f < 1 for f in self.fov):
            raise ValueError(f"the field of view {self.fov} must have odd sides")
        if any(not 0 <= d <= f // 2 for d, f in zip(self.deltas, self.fov, strict=True)):
            raise ValueError(f"deltas {self.deltas} must lie within half the FOV {self.fov}")
        for name in ("init_activation", "pad_value", "move_threshold", "segment_threshold"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be a probability strictly between 0 and 1")
        if self.init_activation < self.move_threshold:
            raise ValueError("init_activation below move_threshold: no object could start")

    @property
    def margin(self) -> np.ndarray:
        return np.asarray(self.fov) // 2


@dataclass
class CanvasStats:
    """What the canvas did, for progress, TensorBoard and the benchmark."""

    fovs: int = 0  # forward passes
    model_seconds: float = 0.0  # inside `predict`
    seeds_tried: int = 0  # seeds that started an object
    objects: int = 0
    voxels: int = 0  # given to objects

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class CanvasState:
    """Everything a canvas needs to continue between two seeds, as arrays and numbers."""

    segmentation: np.ndarray  # uint64 (z, y, x)
    probability: np.ndarray  # uint8: the owning object's probability × 255
    seeds: np.ndarray  # (n, 3) int64
    next_seed: int
    max_id: int
    origins: dict[int, Zyx] = field(default_factory=dict)
    stats: CanvasStats = field(default_factory=CanvasStats)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Flat arrays for `np.savez` (names prefixed, so several states share a file)."""
        origins = np.asarray(
            [(key, *pos) for key, pos in sorted(self.origins.items())], dtype=np.int64
        ).reshape(-1, 4)
        stats = self.stats
        return {
            f"{prefix}segmentation": self.segmentation,
            f"{prefix}probability": self.probability,
            f"{prefix}seeds": self.seeds,
            f"{prefix}counters": np.asarray(
                [
                    self.next_seed,
                    self.max_id,
                    stats.fovs,
                    stats.seeds_tried,
                    stats.objects,
                    stats.voxels,
                ],
                dtype=np.int64,
            ),
            f"{prefix}model_seconds": np.asarray(stats.model_seconds, dtype=np.float64),
            f"{prefix}origins": origins,
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str = "") -> CanvasState:
        counters = [int(v) for v in arrays[f"{prefix}counters"]]
        stats = CanvasStats(
            fovs=counters[2],
            model_seconds=float(arrays[f"{prefix}model_seconds"]),
            seeds_tried=counters[3],
            objects=counters[4],
            voxels=counters[5],
        )
        origins = {int(row[0]): zyx(row[1:]) for row in arrays[f"{prefix}origins"]}
        return cls(
            segmentation=np.asarray(arrays[f"{prefix}segmentation"], dtype=np.uint64),
            probability=np.asarray(arrays[f"{prefix}probability"], dtype=np.uint8),
            seeds=np.asarray(arrays[f"{prefix}seeds"], dtype=np.int64).reshape(-1, 3),
            next_seed=counters[0],
            max_id=counters[1],
            origins=origins,
            stats=stats,
        )


class Canvas:
    """Segments `image` (z, y, x) float32, already normalised, one seed after another."""

    def __init__(
        self, image: np.ndarray, settings: CanvasSettings, predict: Predict, seeds: np.ndarray
    ) -> None:
        if image.ndim != 3:
            raise ValueError(f"the canvas needs a (z, y, x) image, not {image.shape}")
        self.image = np.asarray(image, dtype=np.float32)
        self.shape = zyx(image.shape)
        self.settings = settings
        self.predict = predict
        self.margin = settings.margin
        self.fov = np.asarray(settings.fov)
        self.move_logit = logit(settings.move_threshold)
        self.segment_logit = logit(settings.segment_threshold)
        self.pad_logit = np.float32(logit(settings.pad_value))
        self.movement = FaceMaxMovement(settings.deltas, self.move_logit)
        self.seed = np.full(self.shape, np.nan, dtype=np.float32)  # the object's logits
        self.state = CanvasState(
            segmentation=np.zeros(self.shape, dtype=np.uint64),
            probability=np.zeros(self.shape, dtype=np.uint8),
            seeds=np.asarray(seeds, dtype=np.int64).reshape(-1, 3),
            next_seed=0,
            max_id=0,
        )
        self._batch = np.zeros((1, *settings.fov, 2), dtype=np.float32)
        self._low: np.ndarray | None = None  # the box written in `seed` for this object
        self._high: np.ndarray | None = None

    # The state between seeds ---------------------------------------------------------

    @property
    def segmentation(self) -> np.ndarray:
        return self.state.segmentation

    @property
    def stats(self) -> CanvasStats:
        return self.state.stats

    @property
    def done(self) -> bool:
        return self.state.next_seed >= len(self.state.seeds)

    def restore(self, state: CanvasState) -> None:
        """Continue from a state `state` saved between seeds (see `CanvasState`)."""
        if state.segmentation.shape != self.shape:
            raise ValueError(f"a state of shape {state.segmentation.shape} on {self.shape}")
        self.state = state
        self.seed[...] = np.nan
        self._low = self._high = None

    # Segmenting ---------------------------------------------------------------------

    def segment_all(self, after_seed: Callable[[Canvas], None] | None = None) -> None:
        """Try every remaining seed in order; `after_seed(canvas)` runs after each (it may
        save a checkpoint, report progress, or raise to stop)."""
        while not self.done:
            pos = zyx(self.state.seeds[self.state.next_seed])
            self.try_seed(pos)
            self.state.next_seed += 1
            if after_seed is not None:
                after_seed(self)

    def try_seed(self, pos: Zyx) -> int:
        """Segment one object from `pos`; its new id, or 0 if none was made."""
        if not (self.has_context(pos) and self.segmentation[pos] == 0):
            return 0
        if self.near_object(pos):
            return 0
        self.stats.seeds_tried += 1
        steps = self.segment_at(pos)
        if steps == 0 or not self.seed[pos] >= self.move_logit:
            return 0
        return self.add_object(pos)

    def segment_at(self, start: Zyx) -> int:
        """Flood-fill the logit map from `start`; the number of forward passes run."""
        self.reset_seed()
        self.seed[start] = logit(self.settings.init_activation)
        self._touch(np.asarray(start), np.asarray(start) + 1)
        self.movement.reset(start)
        self.movement.append(math.inf, start)
        steps = 0
        while (pos := self.movement.next(self.can_move_to)) is not None:
            if not self.seed[start] >= self.move_logit:
                break  # the seed got too weak
            logits = self.update_at(pos)
            steps += 1
            self.movement.update(logits, pos)
        return steps

    def update_at(self, pos: Zyx) -> np.ndarray:
        """Run the model on the field of view centred at `pos`; its logits (z, y, x)."""
        low = np.asarray(pos) - self.margin
        high = low + self.fov
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        seed = self.seed[box]
        self._batch[0, ..., 0] = self.image[box]
        self._batch[0, ..., 1] = np.where(np.isnan(seed), self.pad_logit, seed)
        started = time.perf_counter()
        out = self.predict(self._batch)
        self.stats.model_seconds += time.perf_counter() - started
        self.stats.fovs += 1
        logits = np.asarray(out, dtype=np.float32).reshape(self._batch.shape[1:4])
        self.seed[box] = logits
        self._touch(low, high)
        return logits

    def add_object(self, pos: Zyx) -> int:
        """Give the thresholded component holding `pos` a new id if it is large enough."""
        from scipy import ndimage

        assert self._low is not None and self._high is not None
        box = tuple(slice(a, b) for a, b in zip(self._low, self._high, strict=True))
        owned = self.segmentation[box]
        mask = (self.seed[box] >= self.segment_logit) & (owned == 0)
        local = tuple(int(p - a) for p, a in zip(pos, self._low, strict=True))
        if not mask[local]:
            return 0
        components, _ = ndimage.label(mask)
        mask = components == components[local]
        size = int(mask.sum())
        if size < self.settings.min_segment_size:
            return 0
        self.state.max_id += 1
        new_id = self.state.max_id
        owned[mask] = new_id
        probability = expit(self.seed[box][mask].astype(np.float64))
        self.state.probability[box][mask] = np.rint(probability * 255).astype(np.uint8)
        self.state.origins[new_id] = pos
        self.stats.objects += 1
        self.stats.voxels += size
        return new_id

    # Checks ----------------------------------------------------------------------

    def has_context(self, pos: Sequence[int]) -> bool:
        """A full field of view fits around `pos`."""
        p = np.asarray(pos)
        return bool(np.all(p >= self.margin) and np.all(p + self.margin < self.shape))

    def near_object(self, pos: Zyx) -> bool:
        """An owned voxel lies within `min_boundary_dist` of `pos` (per axis)."""
        reach = np.asarray(self.settings.min_boundary_dist)
        low = np.maximum(np.asarray(pos) - reach, 0)
        high = np.asarray(pos) + reach + 1
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        return bool(np.any(self.segmentation[box]))

    def can_move_to(self, pos: Zyx) -> bool:
        """The field of view may go to `pos`: probable enough, unowned, inside."""
        return bool(
            self.has_context(pos)
            and self.seed[pos] >= self.move_logit
            and self.segmentation[pos] == 0
        )

    # The logit map's bookkeeping ------------------------------------------------------

    def reset_seed(self) -> None:
        """NaN again wherever the last object wrote (the same as a whole reset, cheaper)."""
        if self._low is not None and self._high is not None:
            box = tuple(slice(a, b) for a, b in zip(self._low, self._high, strict=True))
            self.seed[box] = np.nan
        self._low = self._high = None

    def _touch(self, low: np.ndarray, high: np.ndarray) -> None:
        self._low = low.copy() if self._low is None else np.minimum(self._low, low)
        self._high = high.copy() if self._high is None else np.maximum(self._high, high)
