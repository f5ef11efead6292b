"""Evaluation reports in the workspace: run and keep, list, read, delete, export as CSV.

A report is one evaluation (`unem.evaluation`) with what was compared, by whom, when, and
the edit version of each dataset it scored; it is a row of the `evaluations` table of the
workspace database. Reading reports never imports the metrics (nor scipy), so the server
stays light.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from unem.errors import NotFound
from unem.evaluation import INSTANCE, SEMANTIC, Evaluation, evaluate
from unem.progress import Progress, no_progress
from unem.workspace import Workspace

TABLE = "evaluations"

EXPLANATIONS = {
    "rand_split": "Rand split score, 1 = no false split. A split is over-segmentation: one "
    "true object cut into several segments.",
    "rand_merge": "Rand merge score, 1 = no false merge. A merge is under-segmentation: one "
    "segment spanning several true objects.",
    "rand_f": "Rand F-score (α = 0.5): the harmonic mean of the split and merge scores.",
    "adapted_rand_error": "Adapted Rand error (SNEMI3D's ARAND) = 1 − rand_f; 0 is perfect.",
    "vi_split": "Variation of information, split part H(S|T) in bits: over-segmentation; "
    "0 is perfect.",
    "vi_merge": "Variation of information, merge part H(T|S) in bits: under-segmentation; "
    "0 is perfect.",
    "vi_total": "vi_split + vi_merge, in bits.",
    "jaccard": "Intersection over union of the predicted and true masks, 1 is perfect.",
    "dice": "2 × intersection / (predicted + true voxels), 1 is perfect.",
    "conformity": "1 − (false positives + false negatives) / true positives; 1 is perfect, "
    "can be negative.",
    "precision": "True positives / predicted voxels: how much of the prediction is right.",
    "recall": "True positives / true voxels: how much of the truth was found.",
    "f1": "Harmonic mean of precision and recall (equals Dice for masks).",
    "true_positive": "Voxels in both masks.",
    "false_positive": "Voxels predicted but not true.",
    "false_negative": "True voxels not predicted.",
    "voxels": "Voxels scored (instance: ground-truth foreground only).",
}
INSTANCE_SCORES = (
    "rand_split", "rand_merge", "rand_f", "adapted_rand_error", "vi_split", "vi_merge", "vi_total",
)  # fmt: skip
SEMANTIC_SCORES = (
    "jaccard", "dice", "conformity", "precision", "recall", "f1",
    "true_positive", "false_positive", "false_negative",
)  # fmt: skip
SCORES = {INSTANCE: INSTANCE_SCORES, SEMANTIC: SEMANTIC_SCORES}
HEADLINE = {INSTANCE: "adapted_rand_error", SEMANTIC: "dice"}


def edit_version(ws: Workspace, dataset: str) -> int:
    """The dataset's latest committed edit (0: never edited): what a report scored."""
    row = ws.db.execute("select max(version) from edits where dataset_id = ?", [dataset])
    return int(row.fetchone()[0] or 0)


def run_evaluation(
    ws: Workspace,
    options: Mapping[str, Any],
    user: str,
    job_id: int | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Evaluate with `options` (the arguments of `evaluate`) and save the report."""
    started = time.monotonic()
    names = {options["dataset"], options.get("groundtruth_dataset") or options["dataset"]}
    versions = {name: edit_version(ws, name) for name in sorted(names)}
    evaluation = evaluate(ws, **options, progress=progress)
    seconds = time.monotonic() - started
    return save_report(ws, evaluation, options, user, job_id, versions, seconds)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def save_report(
    ws: Workspace,
    evaluation: Evaluation,
    options: Mapping[str, Any],
    user: str,
    job_id: int | None = None,
    versions: Mapping[str, int] | None = None,
    seconds: float = 0.0,
) -> dict[str, Any]:
    """Keep an evaluation in the workspace; returns the report (`get_report`)."""
    result = evaluation.to_json()
    row = {
        "dataset_id": options["dataset"],
        "segmentation": options["segmentation"],
        "groundtruth_dataset": options.get("groundtruth_dataset") or options["dataset"],
        "groundtruth": options["groundtruth"],
        "mode": evaluation.mode,
        "options": _dumps(dict(options)),
        "voxels": evaluation.voxels,
        "objects": evaluation.objects,
        "segments": evaluation.segments,
        "scores": _dumps(result["scores"]),
        "per_slice": _dumps(result["per_slice"]),
        "offenders": _dumps(result["offenders"]),
        "versions": _dumps(dict(versions or {})),
        "seconds": round(seconds, 3),
        "user": user,
        "job_id": job_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report_id = ws.db.table(TABLE).insert(row).last_rowid
    return get_report(ws, int(report_id or 0))


SUMMARY = ("id", "created_at", "user", "job_id", "dataset_id", "segmentation",
           "groundtruth_dataset", "groundtruth", "mode", "voxels", "objects", "segments",
           "seconds")  # fmt: skip


def _report(row: Mapping[str, Any], full: bool) -> dict[str, Any]:
    report = {name: row[name] for name in SUMMARY}
    report["dataset"] = report.pop("dataset_id")
    report["options"] = json.loads(row["options"])
    report["versions"] = json.loads(row["versions"])
    report["scores"] = json.loads(row["scores"])
    report["headline"] = HEADLINE[row["mode"]]
    if full:
        report["per_slice"] = json.loads(row["per_slice"])
        report["offenders"] = json.loads(row["offenders"])
        report["explanations"] = {
            name: EXPLANATIONS[name] for name in (*SCORES[row["mode"]], "voxels")
        }
    return report


def list_reports(ws: Workspace, dataset: str | None = None) -> list[dict[str, Any]]:
    """Reports newest first (of one dataset, if given), without per-slice tables."""
    where = "dataset_id = ? or groundtruth_dataset = ?" if dataset else None
    args = [dataset, dataset] if dataset else []
    rows = ws.db.table(TABLE).rows_where(where, args, order_by="id desc")
    return [_report(row, full=False) for row in rows]


def get_report(ws: Workspace, report_id: int) -> dict[str, Any]:
    """A report with its per-slice table, offenders and the explanation of each score."""
    rows = list(ws.db.table(TABLE).rows_where("id = ?", [report_id]))
    if not rows:
        raise NotFound(f"No evaluation report {report_id}.")
    return _report(rows[0], full=True)


def delete_report(ws: Workspace, report_id: int) -> None:
    """Remove a report (NotFound if there is none)."""
    get_report(ws, report_id)
    ws.db.table(TABLE).delete(report_id)


def report_csv(report: Mapping[str, Any]) -> str:
    """The scores as CSV: a row "all" for the whole region, then one row per slice."""
    names = [*SCORES[report["mode"]], "voxels"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["z", *names])
    scores = {**report["scores"], "voxels": report["voxels"]}
    writer.writerow(["all", *(scores[name] for name in names)])
    per_slice = report["per_slice"]
    for i, z in enumerate(per_slice["z"]):
        writer.writerow([z, *(per_slice[name][i] for name in names)])
    return out.getvalue()  # csv writes None (an undefined score) as an empty cell
