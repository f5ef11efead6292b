"""Accuracy of a flood-filling network on the FlyEM medulla sample, trained on the CPU for a
bounded time.

`python -m tests.bench.accuracy_ffn [--minutes M] [--preset P] [--json PATH] [--scratch DIR]`

- Data: `../shared/data/flyem_fib_medulla_neuroproof_sample2`: z 0–159 of a 250³ FIB-SEM
  cube at 10 nm isotropic voxels, its dense body ground truth (`groundtruth_bodies.tif`)
  and the watershed over-segmentation NeuroProof starts from (`oversegmentation.tif`, raw
  supervoxels).
- Training: `ffn-prep` on z 0–119 (objects under `--min-size` voxels are background), then
  `ffn-train` with a CPU preset (default `cpu_isotropic`: FOV 17³, deltas 4³, depth 4),
  Adam at 1e-3, batch 4, the fixed-shift FOV policy, for `--minutes` (default 20) of
  training: when the time is up, the last checkpoint (every 100 steps) becomes the model.
- Inference: `ffn-infer` (the job's own function) on z 120–159, whole slices, with its
  defaults (peak seeds, move threshold 0.9, segment threshold 0.6, min segment size 1000)
  into a new layer.
- Scores on z 120–159 against the ground truth, restricted to its foreground (it is dense:
  nearly every voxel): Rand split/merge/F (`unem.metrics.rand_scores`; unsegmented voxels
  count as singletons) and VI split/merge in bits (`variation_of_information`;
  unsegmented voxels form one segment), with the share of foreground the segmentation
  covers; the same for `oversegmentation.tif` as the baseline.

`--workspace DIR` keeps the workspace: a later run with the same folder reuses its trained
model (no preparation, no training) and only segments and scores again. `--variant
NAME:KEY=VALUE,...` (repeatable) also segments with those `ffn-infer` options changed, each
into a layer of its own, and scores every variant beside the defaults.

Not part of `python -m tests.bench`: a run takes `--minutes` plus preparation and inference
(on 2 busy CPU cores, 10–25 minutes for the 2.5 M voxels).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from unem.cli import parse_settings
from unem.ffn.infer_jobs import FFNInferJobOptions
from unem.ffn.inference import JobRun, infer_dataset
from unem.ffn.options import FFNPrepOptions, FFNTrainOptions
from unem.ffn.prep import prepare
from unem.ffn.train import TrainRun, latest_checkpoint, train_ffn
from unem.metrics import rand_scores, variation_of_information
from unem.volumes.datasets import get_dataset, import_dataset, list_datasets
from unem.volumes.sources import array_source
from unem.volumes.store import open_level
from unem.workspace import Workspace

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MEDULLA = DATA / "flyem_fib_medulla_neuroproof_sample2"
TRAIN_Z = (0, 120)
TEST_Z = (120, 160)
MODEL = "medulla-ffn"
CHECKPOINT_EVERY = 100
SUMMARY_EVERY = 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_medulla() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, body ground truth and over-segmentation, (160, 250, 250) each."""
    files = sorted((MEDULLA / "grayscale_maps").glob("iso.*.png"))
    image = np.stack([np.asarray(Image.open(f)) for f in files])
    bodies = tifffile.imread(MEDULLA / "groundtruth_bodies.tif")
    supervoxels = tifffile.imread(MEDULLA / "oversegmentation.tif")
    return image, bodies, supervoxels


# --- training for a bounded time ----------------------------------------------------------


class TimeUp(Exception):
    """Raised from the progress callback to stop training at the time budget."""


@dataclass
class Clock:
    seconds: float
    started: float = field(default_factory=time.monotonic)
    curve: list[dict[str, float]] = field(default_factory=list)

    def progress(self, step: int, total: int, message: str, metrics: Any) -> None:
        elapsed = time.monotonic() - self.started
        if "eval/f1" in metrics:
            point = {"step": step, "seconds": round(elapsed, 1), **dict(metrics)}
            self.curve.append(point)
            log(
                f"  step {step} at {elapsed / 60:.1f} min: loss {metrics['loss']:.4f}, "
                f"F1 {metrics['eval/f1']:.3f}, moves/sequence {metrics['moves/per_sequence']:.2f}"
            )
        if elapsed > self.seconds:
            raise TimeUp


def train_for(
    ws: Workspace, options: FFNTrainOptions, folder: Path, minutes: float
) -> tuple[Clock, int]:
    """Train until `minutes` have passed; the last checkpoint is saved as the model. The
    clock (with the training curve) and the steps the model was trained for."""
    clock = Clock(minutes * 60)
    try:
        train_ffn(ws, options, TrainRun(folder, clock.progress, log=log, name=MODEL))
        return clock, options.steps  # finished its steps within the budget
    except TimeUp:
        pass
    latest = latest_checkpoint(folder / "checkpoints")
    if latest is None:
        raise RuntimeError("no checkpoint was written: give training more time")
    steps = int(latest.name.split("-")[1])
    log(f"  time is up: the checkpoint of step {steps} becomes the model")
    stopped = options.model_copy(update={"steps": steps})
    train_ffn(ws, stopped, TrainRun(folder, lambda *_: None, log=log, resume=True, name=MODEL))
    return clock, steps


# --- scores ---------------------------------------------------------------------------------


def scores(segmentation: np.ndarray, groundtruth: np.ndarray) -> dict[str, float]:
    rand = rand_scores(segmentation, groundtruth)
    vi = variation_of_information(segmentation, groundtruth)
    foreground = groundtruth != 0
    return {
        "rand_f": rand.rand_f,
        "rand_split": rand.rand_split,
        "rand_merge": rand.rand_merge,
        "adapted_rand_error": rand.adapted_rand_error,
        "vi_split": vi.split,
        "vi_merge": vi.merge,
        "coverage": float(np.count_nonzero(segmentation[foreground]) / foreground.sum()),
        "segments": len(np.unique(segmentation[segmentation != 0])),
    }


def table(found: dict[str, dict[str, float]]) -> str:
    keys = ["rand_f", "rand_split", "rand_merge", "vi_split", "vi_merge", "coverage", "segments"]
    lines = ["| segmentation | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, values in found.items():
        cells = [
            f"{values[k]:.4g}" if isinstance(values[k], float) else str(values[k]) for k in keys
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    ws = Workspace(scratch / "ws")
    image, bodies, supervoxels = load_medulla()
    reused = (ws.root / "models" / MODEL / "model.json").exists()
    if reused:
        dataset = next(d.id for d in list_datasets(ws) if d.name == "medulla")
        trained: dict[str, Any] = {"reused_model": str(ws.root / "models" / MODEL)}
        log(f"reusing the trained model in {ws.root}")
    else:
        dataset, trained = prepare_and_train(ws, image, bodies, args, scratch)
    truth = bodies[TEST_Z[0] : TEST_Z[1]]
    found, inference = {}, {}
    for name, changes in [("defaults", {}), *args.variant]:
        segmentation, inference[name] = segment(ws, dataset, name, changes, scratch)
        label = f"FFN {args.preset}, {name}" + (f" ({format_changes(changes)})" if changes else "")
        found[label] = scores(segmentation, truth)
        log(f"  {label}: {json.dumps(found[label])}")
    found["oversegmentation.tif (watershed)"] = scores(supervoxels[TEST_Z[0] : TEST_Z[1]], truth)
    return {
        "preset": args.preset,
        "minutes": args.minutes,
        "min_size": args.min_size,
        **trained,
        "inference": inference,
        "scores": found,
    }


def prepare_and_train(
    ws: Workspace, image: np.ndarray, bodies: np.ndarray, args: argparse.Namespace, scratch: Path
) -> tuple[str, dict[str, Any]]:
    """The dataset, prepared on z 0–119 and trained on for the time budget."""
    sources = {"image": array_source(image), "groundtruth": array_source(bodies)}
    dataset = import_dataset(ws, "medulla", sources, (10.0, 10.0, 10.0)).id
    started = time.monotonic()
    prep = FFNPrepOptions(
        dataset=dataset,
        preset=args.preset,
        box=f"{TRAIN_Z[0]}:{TRAIN_Z[1]},:,:",
        min_size=args.min_size,
        name="medulla-train",
    )
    preparation = prepare(ws, prep, "medulla-train", log=log)
    prep_seconds = time.monotonic() - started
    log(
        f"prepared in {prep_seconds:.0f} s: {preparation.info['objects']} objects, "
        f"{preparation.info['coordinates']} coordinates"
    )
    options = FFNTrainOptions(
        preparation="medulla-train",
        preset=args.preset,
        batch_size=4,
        optimizer="adam",
        learning_rate=1e-3,
        steps=10_000_000,
        summary_every=SUMMARY_EVERY,
        checkpoint_every=CHECKPOINT_EVERY,
        output=MODEL,
    )
    log(f"training {args.preset} for {args.minutes} min")
    clock, steps = train_for(ws, options, scratch / "train-job", args.minutes)
    trained = {
        "prep_seconds": round(prep_seconds, 1),
        "train_seconds": round(time.monotonic() - clock.started, 1),
        "train_steps": steps,
        "curve": clock.curve,
    }
    return dataset, trained


def segment(
    ws: Workspace, dataset: str, name: str, changes: dict[str, Any], scratch: Path
) -> tuple[np.ndarray, dict[str, Any]]:
    """Segment z 120–159 into the layer `ffn-<name>` (replaced if there is one)."""
    infer_options = FFNInferJobOptions(
        model=MODEL,
        dataset=dataset,
        box=f"{TEST_Z[0]}:{TEST_Z[1]},:,:",
        output=f"ffn-{name}",
        probabilities=False,
        overwrite=True,
        **changes,
    )
    log(f"segmenting z 120-159: {name}")
    started = time.monotonic()
    reported = [0.0]

    def report(step: int, total: int, message: str, metrics: Any) -> None:
        if time.monotonic() - reported[0] > 60:
            reported[0] = time.monotonic()
            log(f"  {step}/{total} seeds: {message}")

    run_infer = JobRun(checkpoint_dir=scratch / f"infer-{name}", report=report, log=log)
    inferred = infer_dataset(ws, infer_options, run_infer)
    summary = {k: v for k, v in inferred.items() if k != "passes"}
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    layer = get_dataset(ws, dataset).layer(f"ffn-{name}")
    segmentation = np.asarray(open_level(layer.path, layer.levels[0].path)[TEST_Z[0] : TEST_Z[1]])
    return segmentation, summary


def format_changes(changes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in changes.items())


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`NAME:KEY=VALUE,...` → (NAME, {KEY: VALUE}), values read as `main.py --set` reads them."""
    name, _, assignments = text.partition(":")
    return name.strip(), parse_settings(list(filter(None, assignments.split(","))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.accuracy_ffn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=20, help="training time (default 20)")
    parser.add_argument(
        "--preset", default="cpu_isotropic", help="FFN preset (default cpu_isotropic)"
    )
    parser.add_argument("--min-size", type=int, default=1000, help="prep: smallest object (voxels)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--scratch", type=Path, metavar="DIR", help="where the workspace goes")
    parser.add_argument(
        "--workspace", type=Path, metavar="DIR", help="keep the workspace here (and reuse it)"
    )
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="also segment with these ffn-infer options changed (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.workspace is not None:
        args.workspace.mkdir(parents=True, exist_ok=True)
        results = run(args, args.workspace)
    else:
        with tempfile.TemporaryDirectory(prefix="unem-ffn-accuracy-", dir=args.scratch) as tmp:
            results = run(args, Path(tmp))
    print(table(results["scores"]))
    if "train_steps" in results:
        print(
            f"\n{results['preset']}: {results['train_steps']} steps in "
            f"{results['train_seconds']:.0f} s of training"
        )
    for name, inferred in results["inference"].items():
        print(
            f"inference {name}: {inferred['wall_seconds']:.0f} s "
            f"({inferred.get('voxels_per_second')} voxels/s, model share "
            f"{inferred.get('model_share')})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
