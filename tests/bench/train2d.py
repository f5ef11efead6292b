"""2D trainer benchmarks: training step throughput, tiled inference speed, inference memory.

- trainer steps/s: `train_model` against a bare `model.fit` of the same compiled U-Net on
  the same patches (pre-drawn with the trainer's own `PatchSampler`, augmentation off), same
  batch. A Keras callback notes when each batch ends. Both rates are given at the default
  `validate_every` (100): 100 / (100 × step time + the time one epoch end adds). The step
  time is the mean without the slowest tenth (a shared machine stalls a few steps), over
  the 2nd and 3rd of three short epochs for UNEM, after a 10-step warm-up for the bare fit
  (which has no epoch end); the epoch end is measured from the last batch of UNEM's 2nd
  epoch to the first of its 3rd (the 1st epoch end traces validation and writes the first
  checkpoints). Short epochs keep the run short; the measure does not depend on their
  length. A second row trains with the default augmentation (no target).
- tiled inference: `predict_tiled` (1/8 overlap, blended) of a slice against one
  `predict_on_batch` of the whole slice, in input Mpx/s, for several tile and batch sizes;
  and, without overlap, against a bare `predict_on_batch` of the same tiles (the cost of
  cutting and blending).
- inference RSS: `infer_layer` in a subprocess on a small and a large stack; peak RSS
  (VmHWM) of the large over the small should stay flat.
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tests.bench.results import Result, Target
from tests.bench.stacks import slices as em_slices
from unem.models.spec import ModelSpec
from unem.plugins import discover_models
from unem.train2d.data import PatchSampler, load_training_data, split_by_slice
from unem.train2d.infer import plan_tiling, predict_tiled
from unem.train2d.options import AugmentOptions, InferOptions, TrainOptions
from unem.train2d.train import TrainRun, build_compiled, train_model
from unem.train2d.trained import save_trained_model
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.workspace import Workspace

Log = Callable[[str], None]
NO_AUGMENT = AugmentOptions(
    flip=0, rotate90=0, elastic=0, brightness_contrast=0, gamma=0, noise=0, blur=0
)
OVERLAP = 0.125
BARE_WARM_UP = 10  # steps of the bare fit before timing: tracing, first allocations
MEMBRANE_BELOW = 90  # grey level under which the synthetic slices' pixels are "membrane"


@dataclass(frozen=True)
class Sizes:
    unet: dict[str, Any]  # U-Net options of the throughput and tiling benchmarks
    patch: int
    batch: int
    validate_every: int  # steps per trainer epoch in the run: 3 epochs, the 1st left out
    train_slices: tuple[int, int]  # count, edge of the synthetic training stack
    train_repeats: int
    infer_edge: int
    tilings: tuple[tuple[int, int], ...]  # (tile, batch); the first is InferOptions' default
    infer_repeats: int
    rss_unet: dict[str, Any]
    rss_slices: tuple[int, int]  # small, large stack
    rss_edge: int
    rss_repeats: int


DEFAULT_TILING = (
    InferOptions.model_fields["tile_size"].default,
    InferOptions.model_fields["batch_size"].default,
)
FULL = Sizes(
    unet={},  # the U-Net's defaults: depth 4, 16 base filters
    patch=128,
    batch=8,
    validate_every=30,
    train_slices=(8, 512),
    train_repeats=3,
    infer_edge=1024,
    tilings=(DEFAULT_TILING, (512, 4), (384, 4), (256, 8)),
    infer_repeats=7,
    rss_unet={"depth": 2, "base_filters": 4},
    rss_slices=(10, 100),
    rss_edge=512,
    rss_repeats=2,
)
QUICK = Sizes(
    unet={"depth": 2, "base_filters": 4},
    patch=32,
    batch=4,
    validate_every=6,
    train_slices=(4, 96),
    train_repeats=1,
    infer_edge=256,
    tilings=((128, 4),),
    infer_repeats=3,
    rss_unet={"depth": 2, "base_filters": 4},
    rss_slices=(4, 20),
    rss_edge=128,
    rss_repeats=1,
)


def run_train2d_benchmarks(scratch: Path, quick: bool, log: Log) -> list[Result]:
    sizes = QUICK if quick else FULL
    spec = discover_models().get("unet")
    ws = Workspace(scratch / "train2d-workspace")
    log("  trainer steps/s against a bare model.fit")
    results = train_benchmarks(ws, spec, sizes, scratch, log)
    log("  tiled inference against whole-image predict")
    results += tiling_benchmarks(spec, sizes, log)
    log("  infer_layer peak RSS, small and large stacks")
    results.append(rss_benchmark(ws, spec, sizes, scratch, log))
    return results


# --- training throughput ----------------------------------------------------------------------


def synthetic_dataset(ws: Workspace, name: str, count: int, edge: int) -> Dataset:
    """EM-like slices (tests.bench.stacks) with their dark membranes as labels."""
    image = np.stack(list(em_slices(count, edge)))
    labels = (image < MEMBRANE_BELOW).astype(np.uint8)
    sources = {"image": array_source(image, name), "groundtruth": array_source(labels, name)}
    return import_dataset(ws, name, sources)


class StepClock(keras.callbacks.Callback):  # type: ignore[misc]
    """When each train batch and each epoch ended (the last callback: after the others)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[float] = []
        self.epoch_batches: list[int] = []  # batches done when each epoch ended

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches.append(time.perf_counter())

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.epoch_batches.append(len(self.batches))

    def step_seconds(self, first: int) -> float:
        """Seconds of a step from batch `first` on, within epochs: the mean without the
        slowest tenth (a shared machine stalls a few steps now and then)."""
        gaps = sorted(
            b - a
            for i, (a, b) in enumerate(itertools.pairwise(self.batches))
            if i + 1 >= first and i + 1 not in self.epoch_batches
        )
        return statistics.fmean(gaps[: max(1, len(gaps) - len(gaps) // 10)])

    def epoch_end_seconds(self, epoch: int, step: float) -> float:
        """What the end of `epoch` added: from its last batch to the next epoch's first,
        less one step."""
        last = self.epoch_batches[epoch]
        return max(self.batches[last] - self.batches[last - 1] - step, 0.0)


@dataclass
class TrainSample:
    steps_per_second: float  # at the default validate_every: DEFAULT_EVERY steps, one end
    step_seconds: float
    epoch_end_seconds: float  # validation, checkpoints, images, the data's restart


DEFAULT_EVERY: int = TrainOptions.model_fields["validate_every"].default


def sample(step: float, epoch_end: float) -> TrainSample:
    return TrainSample(DEFAULT_EVERY / (DEFAULT_EVERY * step + epoch_end), step, epoch_end)


def train_options(dataset: Dataset, sizes: Sizes, augment: AugmentOptions) -> TrainOptions:
    return TrainOptions(
        dataset=dataset.id,
        label_layer="groundtruth",
        model_options=sizes.unet,
        patch_size=sizes.patch,
        batch_size=sizes.batch,
        steps=3 * sizes.validate_every,
        validate_every=sizes.validate_every,
        augment=augment,
    )


def unem_fit(ws: Workspace, spec: ModelSpec, options: TrainOptions, folder: Path) -> TrainSample:
    """`train_model`'s step time in its 2nd and 3rd epochs, and what its 2nd epoch end
    cost (the 1st traces the validation and writes the first checkpoints)."""
    clock = StepClock()
    run = TrainRun(folder, lambda *_: None, log=lambda _: None, extra_callbacks=[clock])
    train_model(ws, spec, options, run)
    step = clock.step_seconds(clock.epoch_batches[0] + 1)
    return sample(step, clock.epoch_end_seconds(1, step))


def bare_batches(
    ws: Workspace, options: TrainOptions, count: int
) -> tuple[Any, np.ndarray, np.ndarray]:
    """The training data and `count` batches drawn by the trainer's sampler, as (x, y)."""
    data = load_training_data(ws, options)
    train = split_by_slice(data.slices, options.validation_fraction, options.seed).train
    sampler = PatchSampler(data, train, options.patch_size, options.batch_size, 1, NO_AUGMENT, 0)
    batches = [sampler.batch() for _ in range(count)]
    return data, np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def bare_fit(ws: Workspace, spec: ModelSpec, options: TrainOptions) -> TrainSample:
    """A plain `model.fit`'s step time on as many of the same patches, after a warm-up."""
    steps, warm_up = 2 * options.validate_every, min(BARE_WARM_UP, options.validate_every)
    data, x, y = bare_batches(ws, options, warm_up + steps)
    train = split_by_slice(data.slices, options.validation_fraction, options.seed).train
    keras.utils.set_random_seed(options.seed)
    model = build_compiled(spec, spec.validate(options.model_options), options, data, train)
    clock = StepClock()
    model.fit(x, y, batch_size=options.batch_size, epochs=1, verbose=0, callbacks=[clock])
    return sample(clock.step_seconds(warm_up), 0.0)


def sampler_seconds(ws: Workspace, options: TrainOptions, augment: AugmentOptions) -> float:
    """Seconds the trainer's sampler takes for one batch (one thread)."""
    data = load_training_data(ws, options)
    train = split_by_slice(data.slices, options.validation_fraction, options.seed).train
    sampler = PatchSampler(data, train, options.patch_size, options.batch_size, 1, augment, 0)
    started = time.perf_counter()
    for _ in range(20):
        sampler.batch()
    return (time.perf_counter() - started) / 20


def train_benchmarks(
    ws: Workspace, spec: ModelSpec, sizes: Sizes, scratch: Path, log: Log
) -> list[Result]:
    dataset = synthetic_dataset(ws, "train2d-throughput", *sizes.train_slices)
    plain = train_options(dataset, sizes, NO_AUGMENT)
    augmented = train_options(dataset, sizes, AugmentOptions.model_validate({}))
    found: dict[str, list[TrainSample]] = {"bare": [], "plain": [], "augmented": []}
    runs = {
        "bare": lambda: bare_fit(ws, spec, plain),
        "plain": lambda: unem_fit(ws, spec, plain, scratch / f"train2d-job-{time.time_ns()}"),
        "augmented": lambda: unem_fit(
            ws, spec, augmented, scratch / f"train2d-job-{time.time_ns()}"
        ),
    }
    order = list(runs)
    for repeat in range(sizes.train_repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            found[name].append(runs[name]())
            log(f"    {name}: {found[name][-1].steps_per_second:.3g} steps/s")
    sampling = {
        "off": sampler_seconds(ws, plain, NO_AUGMENT),
        "default": sampler_seconds(ws, augmented, AugmentOptions.model_validate({})),
    }
    bare, reported = found["bare"], Target("ratio", True, 0.0)
    return [
        train_result("off", found["plain"], bare, sizes, sampling, Target("ratio", True, 0.9)),
        train_result("default", found["augmented"], bare, sizes, sampling, reported),
    ]


def train_result(
    augment: str,
    samples: Sequence[TrainSample],
    bare: Sequence[TrainSample],
    sizes: Sizes,
    sampling: dict[str, float],
    target: Target,
) -> Result:
    step = statistics.median(s.step_seconds for s in samples)
    end = statistics.median(s.epoch_end_seconds for s in samples)
    bare_step = statistics.median(s.step_seconds for s in bare)
    model = f"U-Net {json.dumps(sizes.unet) if sizes.unet else 'defaults'}"
    note = (
        f"{model}, {sizes.patch}² × {sizes.batch}; at validate_every={DEFAULT_EVERY}: the step "
        f"time (3 epochs of {sizes.validate_every} steps, the 1st left out) plus one epoch end "
        f"per {DEFAULT_EVERY} steps. Step {step * 1000:.0f} ms (bare {bare_step * 1000:.0f} ms, "
        f"ratio {bare_step / step:.2f}); epoch end (validation, checkpoints, images, data "
        f"restart) {end:.2f} s = {end / (DEFAULT_EVERY * step):.0%} of {DEFAULT_EVERY} steps. "
        f"Sampler, one thread: {sampling[augment] * 1000:.1f} ms/batch"
    )
    if augment == "default":
        note += "; no target: reported"
    return Result(
        f"trainer steps/s, augmentation {augment}",
        "steps/s",
        [s.steps_per_second for s in samples],
        [s.steps_per_second for s in bare],
        target,
        note=note,
    )


# --- tiled inference --------------------------------------------------------------------------


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def tile_stack(image: np.ndarray, tile: int) -> np.ndarray:
    """The tiles of side `tile` that cut `image` (h, w, c) without overlap."""
    h, w = image.shape[:2]
    return np.stack(
        [image[y : y + tile, x : x + tile] for y in range(0, h, tile) for x in range(0, w, tile)]
    )


def bare_tiles(predict: Callable[[np.ndarray], Any], tiles: np.ndarray, batch: int) -> None:
    for first in range(0, len(tiles), batch):
        np.asarray(predict(tiles[first : first + batch]))


def tiling_benchmarks(spec: ModelSpec, sizes: Sizes, log: Log) -> list[Result]:
    options = spec.validate(sizes.unet)
    multiple = spec.size_multiple(options)
    model = spec.build(options, (None, None, 1), 2)
    edge = sizes.infer_edge
    image = np.stack(list(em_slices(1, edge)))[0][..., None].astype(np.float32) / 255
    predict = model.predict_on_batch
    tile, batch = sizes.tilings[0]
    tiles = tile_stack(image, tile)
    measures: dict[str, Callable[[], Any]] = {
        "whole": lambda: np.asarray(predict(image[None])),
        "bare tiles": lambda: bare_tiles(predict, tiles, batch),
        "no overlap": lambda: predict_tiled(predict, image, tile, 0.0, batch, multiple),
        **{
            f"{t}/{b}": lambda t=t, b=b: predict_tiled(predict, image, t, OVERLAP, b, multiple)
            for t, b in sizes.tilings
        },
    }
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for measure in measures.values():
        measure()  # traces each batch shape once
    names = list(measures)
    for repeat in range(sizes.infer_repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            seconds[name].append(timed(measures[name]))
    mpx = edge * edge / 1e6
    rate = {name: [mpx / s for s in found] for name, found in seconds.items()}
    log("    " + ", ".join(f"{n}: {statistics.median(r):.3g} Mpx/s" for n, r in rate.items()))
    results = [
        Result(
            f"tiled inference, tile {t} batch {b}, 1/8 overlap",
            "Mpx/s",
            rate[f"{t}/{b}"],
            rate["whole"],
            Target("ratio", True, 0.8),
            note=tiling_note(edge, t, multiple, (t, b) == DEFAULT_TILING),
        )
        for t, b in sizes.tilings
    ]
    results.append(
        Result(
            f"tiled inference, tile {tile} batch {batch}, no overlap",
            "Mpx/s",
            rate["no overlap"],
            rate["bare tiles"],
            Target("ratio", True, 0.9),
            note=f"against bare predict_on_batch of the same {len(tiles)} tiles: the cost of "
            "cutting, weighting and blending",
        )
    )
    return results


def tiling_note(edge: int, tile: int, multiple: int, default: bool) -> str:
    """How many tiles, and the share of extra pixels they predict."""
    tiling = plan_tiling(edge, edge, tile, OVERLAP, multiple)
    count = len(tiling.corners())
    extra = tiling.predicted_pixels / edge**2
    rows, cols = tiling.rows, tiling.cols
    note = (
        f"{edge}² slice: {count} tiles of {rows.tile}×{cols.tile} (step {rows.step}), "
        f"{extra:.2f}× the slice's pixels: ratio ceiling ≈ {1 / extra:.2f}"
    )
    return note + ("; InferOptions' default tile size" if default else "")


# --- inference memory -------------------------------------------------------------------------


RSS_CHILD = """
import json, sys
from pathlib import Path
from unem.plugins import discover_models
from unem.train2d.infer import infer_layer
from unem.train2d.options import InferOptions
from unem.workspace import Workspace
ws = Workspace(Path(sys.argv[1]))
options = InferOptions(model=sys.argv[2], dataset=sys.argv[3], output=sys.argv[4], tile_size=512)
infer_layer(ws, options, discover_models().get("unet"))
status = Path("/proc/self/status").read_text().splitlines()
print(json.dumps({"peak_kib": int(next(l for l in status if l.startswith("VmHWM:")).split()[1])}))
"""
# Not ru_maxrss: Linux carries it over fork and exec, so a child started from this process
# (over 2 GB once the trainer benchmarks ran) would report the parent's peak. VmHWM is the
# high-water mark of the child's own address space.


def rss_model(ws: Workspace, spec: ModelSpec, sizes: Sizes, folder: Path) -> str:
    """An untrained U-Net saved as a trained model (weights do not change memory use)."""
    options = spec.validate(sizes.rss_unet)
    path = folder / "rss-net.keras"
    spec.build(options, (None, None, 1), 2).save(path)
    info = {
        "model": spec.name,
        "model_options": options.model_dump(),
        "channels": 1,
        "n_classes": 2,
        "activation": "softmax",
        "size_multiple": spec.size_multiple(options),
        "input_scale": 255.0,
    }
    save_trained_model(ws, "rss-net", path, info)
    return "rss-net"


def child_rss(ws: Workspace, model: str, dataset: str, output: str) -> float:
    """Peak RSS (MB) of a fresh process that runs infer_layer on `dataset`."""
    done = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(ws.root), model, dataset, output],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_kib"]) / 1024


def rss_benchmark(ws: Workspace, spec: ModelSpec, sizes: Sizes, folder: Path, log: Log) -> Result:
    model = rss_model(ws, spec, sizes, folder)
    small, large = sizes.rss_slices
    stacks = {n: synthetic_dataset(ws, f"rss-{n}", n, sizes.rss_edge).id for n in (small, large)}
    found: dict[int, list[float]] = {small: [], large: []}
    for repeat in range(sizes.rss_repeats):
        for n in (small, large) if repeat % 2 == 0 else (large, small):
            found[n].append(child_rss(ws, model, stacks[n], f"prediction-{repeat}"))
            log(f"    {n} slices: {found[n][-1]:.0f} MB")
    grown = statistics.median(found[large]) - statistics.median(found[small])
    raw = (large - small) * sizes.rss_edge**2 / 2**20
    return Result(
        f"infer_layer peak RSS, {large} vs {small} slices",
        "MB",
        found[large],
        found[small],
        Target("ratio", False, 1.2),
        note=f"{sizes.rss_edge}² uint8 slices, U-Net {json.dumps(sizes.rss_unet)}, in a fresh "
        f"process each; the large stack adds {grown:+.0f} MB of peak RSS for "
        f"{large - small} more slices ({raw:.0f} MB of uint8 input)",
    )
