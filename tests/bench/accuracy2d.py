"""Accuracy of the 2D trainer on real EM, trained on the CPU for a fixed time.

`python -m tests.bench.accuracy2d [--minutes M] [--task isbi|mito] [--json PATH]`

- isbi: ISBI 2012 membranes (slices 00-23 have labels; 0 = membrane, so
  `target="binary_inverted"`). Trains on 00-19 (the trainer holds some of them out for
  validation), predicts the membrane probability of its validation slices and of 20-23, then
  segments cells per slice: connected components of prob < threshold, and a watershed of the
  probability from seeds (components of prob < low). Scores: foreground-restricted Rand
  F-score (V_Rand, SNEMI3D definition: `unem.metrics.rand_scores`) against the
  ground-truth cells (components of label 255), per slice, averaged. Thresholds are
  chosen on the validation slices; the best on the evaluation slices is shown too, marked
  as an oracle.
- mito: Gerhard et al. 2013 stack 1 mitochondria (sections 00-09 here; 10-19 withheld).
  Trains on 00-07 at half resolution (`downsample` 2), evaluates 08-09 at full
  resolution: Jaccard and Dice of the thresholded probability (threshold chosen on the
  validation section(s) held out from 00-07; 0.5 shown too), and the mean Jaccard of
  both classes.

Each task's model predicts twice: as it is and with dihedral test-time augmentation.

Training stops by time (a Keras callback sets `stop_training`); the curve is every
validation the trainer reports (step, seconds, loss and validation scores).
Not part of `python -m tests.bench`: a run takes `--minutes` (default 20) plus inference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

from unem.metrics import mask_scores, rand_scores
from unem.plugins import discover_models
from unem.train2d.data import split_by_slice
from unem.train2d.infer import infer_layer
from unem.train2d.options import AugmentOptions, InferOptions, TrainOptions
from unem.train2d.train import TrainRun, train_model
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.volumes.store import open_level
from unem.workspace import Workspace

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ISBI = DATA / "isbi2012_drosophila_vnc" / "train"
GERHARD = DATA / "drosophila_vnc_gerhard2013_stack1"
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SEED_THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)  # watershed seeds: prob below this
MIN_SEED = 10  # px: smaller seed components are noise, not cells
AUGMENTATIONS = ("none", "dihedral")  # test-time augmentation: every one is scored


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- tasks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]  # image uint8 (z,y,x), labels (z,y,x)
    target: str
    train_slices: str
    eval_slices: list[int]
    options: dict[str, Any] = field(default_factory=dict)  # TrainOptions changes


def load_isbi() -> tuple[np.ndarray, np.ndarray]:
    """The 24 labelled ISBI slices: images and labels (255 interior, 0 membrane)."""
    labels = sorted((ISBI / "label").glob("*.png"))
    image = np.stack([np.asarray(Image.open(ISBI / "image" / p.name)) for p in labels])
    return image, np.stack([np.asarray(Image.open(p)) for p in labels])


def load_mito() -> tuple[np.ndarray, np.ndarray]:
    """Gerhard stack 1 sections 00-09: raw and mitochondria masks (1 = mitochondrion)."""
    raws = sorted((GERHARD / "raw").glob("*.tif"))
    image = np.stack([tifffile.imread(p) for p in raws])
    masks = [np.asarray(Image.open(GERHARD / "mitochondria" / f"{p.stem}.png")) for p in raws]
    # 1-bit files read as bool; 8-bit ones hold 0/255 with a few anti-aliased values.
    return image, np.stack([(m > 127) if m.dtype != bool else m for m in masks]).astype(np.uint8)


# Flips, rotations and the default intensity changes; no elastic deformation: in 20 CPU
# minutes the model sees each pixel a few dozen times at most, so it underfits rather than
# overfits, and the deformation costs data-thread time on 2 cores.
AUGMENT = {"flip": 0.5, "rotate90": 0.5, "elastic": 0.0}
TASKS = {
    "isbi": Task(
        "isbi",
        load_isbi,
        "binary_inverted",
        "0-19",
        [20, 21, 22, 23],
        {"loss": "softmax_cross_entropy", "augment": AUGMENT},
    ),
    "mito": Task(
        "mito",
        load_mito,
        "binary",
        "0-7",
        [8, 9],
        # Dice, not cross-entropy: mitochondria are ~5 % of the pixels. After 20 min each,
        # validation IoU (section 2, held out from 00-07) was 0.735 with Dice, 0.648 with CE.
        # At half resolution: mitochondria are 100-200 px wide, more than the U-Net's
        # receptive field at full resolution. 20 quiet CPU min each, dihedral test-time
        # augmentation: Jaccard 0.839 at half resolution, 0.811 at full (0.803 / 0.816
        # without the augmentation).
        {"loss": "dice", "augment": AUGMENT, "downsample": 2},
    ),
}


# --- training ---------------------------------------------------------------------------------


class TimeBudget(keras.callbacks.Callback):  # type: ignore[misc]
    """Stops training once `seconds` have passed since its first batch; counts the steps."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.started, self.steps = seconds, 0.0, 0

    def on_train_begin(self, logs: Any = None) -> None:
        self.started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.steps += 1
        if time.monotonic() - self.started > self.seconds:
            self.model.stop_training = True


class Curve:
    """Every validation the trainer reports, with the seconds since training began."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.points: list[dict[str, float]] = []

    def progress(self, step: int, total: int, message: str, metrics: Any) -> None:
        if message.startswith("validated"):
            seconds = round(time.monotonic() - self.started, 1)
            point = {"step": step, "seconds": seconds, **{k: float(v) for k, v in metrics.items()}}
            self.points.append(point)
            scores = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "learning_rate")
            log(f"  step {step} at {seconds:.0f} s: {scores}")


def import_task(ws: Workspace, task: Task) -> tuple[Dataset, np.ndarray]:
    image, labels = task.load()
    sources = {"image": array_source(image, task.name), "groundtruth": array_source(labels)}
    return import_dataset(ws, task.name, sources), labels


def train(
    ws: Workspace, dataset: Dataset, task: Task, args: argparse.Namespace, folder: Path
) -> tuple[TrainOptions, dict[str, Any], Curve, TimeBudget]:
    overrides = {k: v for k, v in vars(args).items() if k in OVERRIDES and v}
    values = {"patch_size": 256, "batch_size": 4, "learning_rate": 1e-3, **task.options}
    values = {**values, **overrides, "augment": AugmentOptions(**task.options.get("augment", {}))}
    options = TrainOptions(
        dataset=dataset.id,
        label_layer="groundtruth",
        target=task.target,  # type: ignore[arg-type]
        slices=task.train_slices,
        model_options={"depth": args.depth, "base_filters": args.base_filters},
        steps=1_000_000,  # the time budget stops it
        validate_every=args.validate_every,
        checkpoint_every=1_000_000,
        **values,
    )
    curve, budget = Curve(), TimeBudget(args.minutes * 60)
    run = TrainRun(folder, curve.progress, log=log, name=task.name, extra_callbacks=[budget])
    log(f"training {task.name} for {args.minutes:g} min: {options.model_dump_json()}")
    result = train_model(ws, discover_models().get("unet"), options, run)
    return options, result, curve, budget


OVERRIDES = ("loss", "patch_size", "batch_size", "learning_rate", "downsample")


def predict(
    ws: Workspace, dataset: Dataset, model: str, slices: Sequence[int], augmentation: str
) -> np.ndarray:
    """Class-1 probability (z, y, x) float32 of `slices` (other slices are zeros)."""
    chosen = ",".join(str(z) for z in slices)
    options = InferOptions(
        model=model,
        dataset=dataset.id,
        slices=chosen,
        output=f"prediction-{augmentation}",
        test_time_augmentation=augmentation,  # type: ignore[arg-type]
    )
    layer = infer_layer(ws, options, discover_models().get("unet"))
    return np.asarray(open_level(layer.path, "0")).astype(np.float32) / 255


# --- scores -----------------------------------------------------------------------------------


def cells(mask: np.ndarray) -> np.ndarray:
    """4-connected components of a 2D mask (membranes, even 1 px thin, separate them)."""
    labels, _ = ndimage.label(mask)
    return labels


def watershed_cells(prob: np.ndarray, low: float) -> np.ndarray:
    """Flood the membrane probability from seeds: components of prob < low (≥ MIN_SEED px)."""
    from skimage.segmentation import watershed

    seeds = cells(prob < low)
    small = np.bincount(seeds.ravel()) < MIN_SEED
    small[0] = False
    seeds[small[seeds]] = 0
    return np.asarray(watershed(prob, seeds))


def mean_rand_f(
    segment: Callable[[np.ndarray], np.ndarray],
    probs: np.ndarray,
    truths: Sequence[np.ndarray],
) -> dict[str, float]:
    found = [rand_scores(segment(p), t) for p, t in zip(probs, truths, strict=True)]
    return {
        "rand_f": float(np.mean([s.rand_f for s in found])),
        "rand_split": float(np.mean([s.rand_split for s in found])),
        "rand_merge": float(np.mean([s.rand_merge for s in found])),
    }


def segmenters() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Every post-processing setting tried, by name."""
    found: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for t in THRESHOLDS:
        found[f"components@{t:g}"] = lambda p, t=t: cells(p < t)
    for low in SEED_THRESHOLDS:
        found[f"watershed@{low:g}"] = lambda p, low=low: watershed_cells(p, low)
    return found


def isbi_scores(
    probs: np.ndarray, labels: np.ndarray, validation: Sequence[int], evaluation: Sequence[int]
) -> dict[str, Any]:
    truths = {z: cells(labels[z] == 255) for z in [*validation, *evaluation]}
    table: dict[str, dict[str, Any]] = {}
    for name, segment in segmenters().items():
        table[name] = {
            "validation": mean_rand_f(segment, probs[validation], [truths[z] for z in validation]),
            "evaluation": mean_rand_f(segment, probs[evaluation], [truths[z] for z in evaluation]),
        }
    final: dict[str, Any] = {"settings": table}
    for family in ("components", "watershed"):
        names = [n for n in table if n.startswith(family)]
        chosen = max(names, key=lambda n: table[n]["validation"]["rand_f"])
        oracle = max(names, key=lambda n: table[n]["evaluation"]["rand_f"])
        final[family] = {
            "chosen_on_validation": chosen,
            "rand_f": table[chosen]["evaluation"]["rand_f"],
            "oracle": oracle,
            "oracle_rand_f": table[oracle]["evaluation"]["rand_f"],
        }
    final["components"]["rand_f_at_0.5"] = table["components@0.5"]["evaluation"]["rand_f"]
    final["pixel_error_at_0.5"] = float(
        np.mean([(probs[z] >= 0.5) != (labels[z] == 0) for z in evaluation])
    )
    return final


def overlap_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Jaccard and Dice of two boolean masks (pooled over every pixel given), and the mean
    Jaccard of both classes (foreground and background: pyTC's "IoU" beside its
    "foreground IoU"; some mitochondria papers report this one as the Jaccard index)."""
    scores = mask_scores(predicted, truth)
    background = mask_scores(~predicted, ~truth)
    mean = (scores.jaccard + background.jaccard) / 2
    return {"jaccard": scores.jaccard, "dice": scores.dice, "mean_jaccard": mean}


def mito_scores(
    probs: np.ndarray, labels: np.ndarray, validation: Sequence[int], evaluation: Sequence[int]
) -> dict[str, Any]:
    table = {
        f"{t:g}": {
            "validation": overlap_scores(probs[validation] >= t, labels[validation] > 0),
            "evaluation": overlap_scores(probs[evaluation] >= t, labels[evaluation] > 0),
        }
        for t in THRESHOLDS
    }
    chosen = max(table, key=lambda t: table[t]["validation"]["jaccard"])
    oracle = max(table, key=lambda t: table[t]["evaluation"]["jaccard"])
    return {
        "thresholds": table,
        "chosen_threshold": float(chosen),
        **table[chosen]["evaluation"],
        "at_0.5": table["0.5"]["evaluation"],
        "oracle_threshold": float(oracle),
        "oracle_jaccard": table[oracle]["evaluation"]["jaccard"],
    }


# --- the run ----------------------------------------------------------------------------------


def run_task(
    task: Task, args: argparse.Namespace, scratch: Path, keep: Path | None
) -> dict[str, Any]:
    ws = Workspace(scratch / f"ws-{task.name}")
    dataset, labels = import_task(ws, task)
    options, result, curve, budget = train(ws, dataset, task, args, scratch / f"job-{task.name}")
    trained_slices = list(range(int(task.train_slices.split("-")[1]) + 1))
    split = split_by_slice(trained_slices, options.validation_fraction, options.seed)
    validation = [trained_slices[i] for i in split.validation]
    score = isbi_scores if task.name == "isbi" else mito_scores
    predicted = [*validation, *task.eval_slices]
    seconds, scores = {}, {}
    for augmentation in AUGMENTATIONS:
        started = time.monotonic()
        probs = predict(ws, dataset, task.name, predicted, augmentation)
        seconds[augmentation] = round(time.monotonic() - started, 1)
        scores[augmentation] = score(probs, labels, validation, task.eval_slices)
        if keep is not None:  # to post-process again without training again
            keep.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                keep.with_suffix(f".{augmentation}.npz"),
                slices=predicted,
                probabilities=probs[predicted],
            )
    return {
        "task": task.name,
        "minutes": args.minutes,
        "options": json.loads(options.model_dump_json()),
        "steps": budget.steps,  # the trainer's own count rounds up to whole epochs
        "trainer_result": result,
        "validation_slices": validation,
        "evaluation_slices": task.eval_slices,
        "predict_seconds": seconds,
        "curve": curve.points,
        "scores": scores,
    }


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("steps trained", str(report["steps"]))]
    rows.append(("validation slices", str(report["validation_slices"])))
    for augmentation, scores in report["scores"].items():
        seconds = report["predict_seconds"][augmentation]
        rows.append((f"predict, test-time augmentation {augmentation}", f"{seconds:g} s"))
        score_rows = isbi_rows if report["task"] == "isbi" else mito_rows
        rows += [(f"{name} [tta {augmentation}]", value) for name, value in score_rows(scores)]
    return rows


def isbi_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for family in ("components", "watershed"):
        f = s[family]
        chosen = f"Rand F {family} ({f['chosen_on_validation']}, chosen on validation)"
        rows.append((chosen, f"{f['rand_f']:.4f}"))
        rows.append((f"Rand F {family} oracle ({f['oracle']})", f"{f['oracle_rand_f']:.4f}"))
    rows.append(("Rand F components@0.5", f"{s['components']['rand_f_at_0.5']:.4f}"))
    rows.append(("pixel error @0.5", f"{s['pixel_error_at_0.5']:.4f}"))
    return rows


def mito_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    chosen = f"@{s['chosen_threshold']:g} (threshold chosen on validation)"
    at_half = s["at_0.5"]
    return [
        (f"Jaccard / Dice {chosen}", f"{s['jaccard']:.4f} / {s['dice']:.4f}"),
        (f"mean Jaccard of both classes {chosen}", f"{s['mean_jaccard']:.4f}"),
        ("Jaccard / Dice @0.5", f"{at_half['jaccard']:.4f} / {at_half['dice']:.4f}"),
        (f"Jaccard oracle @{s['oracle_threshold']:g}", f"{s['oracle_jaccard']:.4f}"),
    ]


def curve_table(points: Sequence[dict[str, float]]) -> str:
    keys = ["step", "seconds", "loss", "val_loss", "val_dice", "val_iou", "val_accuracy"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for point in points:
        cells_ = [f"{point[k]:.4g}" if k in point else "" for k in keys]
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    print(f"\n## {report['task']}: {report['minutes']:g} min of training\n")
    print(curve_table(report["curve"]))
    print()
    print("| figure | value |\n|---|---|")
    for name, value in summary_rows(report):
        print(f"| {name} | {value} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.accuracy2d",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="training time per task")
    parser.add_argument("--task", action="append", choices=sorted(TASKS), help="repeatable")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--scratch", type=Path, metavar="DIR", help="default: a temporary folder")
    parser.add_argument("--depth", type=int, default=4, help="U-Net depth")
    parser.add_argument("--base-filters", type=int, default=16, help="U-Net base filters")
    parser.add_argument("--validate-every", type=int, default=100, help="steps per validation")
    parser.add_argument("--loss", help="override the task's loss")
    parser.add_argument("--patch-size", type=int, help="default 256")
    parser.add_argument("--batch-size", type=int, help="default 4")
    parser.add_argument("--learning-rate", type=float, help="default 1e-3")
    parser.add_argument("--downsample", type=int, help="train at 1/N resolution (task's default)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reports = []
    with tempfile.TemporaryDirectory(prefix="unem-accuracy-", dir=args.scratch) as scratch:
        for name in args.task or list(TASKS):
            keep = args.json.with_suffix(f".{name}.npz") if args.json else None
            reports.append(run_task(TASKS[name], args, Path(scratch), keep))
            print_report(reports[-1])
            if args.json:  # after each task: a long run keeps what it has
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(reports, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
