"""The `jobs` table: one row per job, its state, progress, result and worker process.

The server is the only writer of a job's state once it runs (the worker only reports), so
every transition here is a single conditional UPDATE: whoever wins the race — the runner,
`jobs cancel` on the command line, recovery at start-up — changes the row, the others see
that nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from unem.errors import Conflict, NotFound

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE_STATES = ("queued", "running")
RESUMABLE_STATES = ("interrupted", "failed", "cancelled")
LOG_NAME = "log.txt"
JSON_COLUMNS = ("options", "metrics", "result", "last_lines")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def job_folder(root: Path, job_id: int) -> Path:
    """`<workspace>/jobs/<id>/`: the log, checkpoints and TensorBoard events of a job."""
    return root / "jobs" / str(job_id)


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    title: str
    options: dict[str, Any]
    resource: str
    resumable: bool
    state: str
    user: str
    created_at: str
    step: int = 0
    total: int = 0
    message: str = ""
    metrics: dict[str, float] | None = None
    eta_seconds: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    error: str | None = None
    last_lines: list[str] | None = None
    result: Any = None
    attempts: int = 0
    cancel_requested: bool = False
    pid: int | None = None
    pid_started: float | None = None
    log_path: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def can_resume(self) -> bool:
        return self.resumable and self.state in RESUMABLE_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "options": self.options,
            "resource": self.resource,
            "resumable": self.resumable,
            "can_resume": self.can_resume,
            "state": self.state,
            "user": self.user,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "step": self.step,
            "total": self.total,
            "message": self.message,
            "metrics": self.metrics or {},
            "eta_seconds": self.eta_seconds,
            "exit_code": self.exit_code,
            "error": self.error,
            "last_lines": self.last_lines or [],
            "result": self.result,
            "attempts": self.attempts,
            "cancel_requested": self.cancel_requested,
        }


def _from_row(row: Mapping[str, Any]) -> Job:
    values = dict(row)
    for column in JSON_COLUMNS:
        raw = values.get(column)
        values[column] = json.loads(raw) if raw is not None else None
    values["options"] = values["options"] or {}
    values["resumable"] = bool(values["resumable"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    values["message"] = values["message"] or ""
    return Job(**values)


def create_job(
    db: Database,
    kind: str,
    title: str,
    options: Mapping[str, Any],
    resource: str,
    resumable: bool,
    user: str,
) -> Job:
    """A new queued job (the runner starts it when its resource class has room)."""
    table = db.table("jobs")
    table.insert(
        {
            "kind": kind,
            "title": title,
            "options": json.dumps(dict(options)),
            "resource": resource,
            "resumable": int(resumable),
            "state": "queued",
            "user": user,
            "created_at": now(),
        }
    )
    job_id = int(table.last_pk or 0)
    table.update(job_id, {"log_path": f"jobs/{job_id}/{LOG_NAME}"})
    return get_job(db, job_id)


def get_job(db: Database, job_id: int) -> Job:
    rows = list(db["jobs"].rows_where("id = ?", [job_id]))
    if not rows:
        raise NotFound(f"No job {job_id}.")
    return _from_row(rows[0])


def list_jobs(db: Database, states: Iterable[str] | None = None, limit: int = 200) -> list[Job]:
    """Newest first; only the given states if any."""
    wanted = list(states or ())
    where = f"state in ({', '.join('?' for _ in wanted)})" if wanted else None
    rows = db["jobs"].rows_where(where, wanted, order_by="id desc", limit=limit)
    return [_from_row(row) for row in rows]


def queued_jobs(db: Database) -> list[Job]:
    """Oldest first: the order the runner starts them in."""
    return [_from_row(r) for r in db["jobs"].rows_where("state = 'queued'", order_by="id")]


def _update(
    db: Database, job_id: int, values: Mapping[str, Any], where: str, args: list[Any]
) -> bool:
    """UPDATE the row if `where` still holds; whether it did."""
    columns = ", ".join(f"[{name}] = ?" for name in values)
    cursor = db.execute(
        f"UPDATE jobs SET {columns} WHERE id = ? AND {where}", [*values.values(), job_id, *args]
    )
    return bool(cursor.rowcount)


def claim_job(db: Database, job_id: int) -> bool:
    """queued → running; False if someone else (a cancel) changed it first."""
    cursor = db.execute(
        "UPDATE jobs SET state = 'running', started_at = ?, finished_at = NULL, step = 0,"
        " total = 0, message = '', metrics = NULL, eta_seconds = NULL, pid = NULL,"
        " pid_started = NULL, attempts = attempts + 1 WHERE id = ? AND state = 'queued'",
        [now(), job_id],
    )
    return bool(cursor.rowcount)


def record_process(db: Database, job_id: int, pid: int, started: float) -> None:
    """The worker's pid and start time: enough to find it again, never a reused pid."""
    db.table("jobs").update(job_id, {"pid": pid, "pid_started": started})


def record_progress(
    db: Database,
    job_id: int,
    step: int,
    total: int,
    message: str,
    metrics: Mapping[str, float],
    eta_seconds: float | None,
) -> None:
    values = {
        "step": step,
        "total": total,
        "message": message,
        "metrics": json.dumps(dict(metrics)),
        "eta_seconds": eta_seconds,
    }
    _update(db, job_id, values, "state = 'running'", [])


def finish_job(
    db: Database,
    job_id: int,
    state: str,
    *,
    result: Any = None,
    error: str | None = None,
    exit_code: int | None = None,
    last_lines: list[str] | None = None,
    from_states: tuple[str, ...] = ("running",),
) -> bool:
    """Move a job to a final state, once: False if it was not in `from_states` any more."""
    assert state in STATES and state not in ACTIVE_STATES, state
    values = {
        "state": state,
        "finished_at": now(),
        "result": json.dumps(result) if result is not None else None,
        "error": error,
        "exit_code": exit_code,
        "last_lines": json.dumps(last_lines) if last_lines is not None else None,
        "eta_seconds": None,
    }
    marks = ", ".join("?" for _ in from_states)
    return _update(db, job_id, values, f"state in ({marks})", list(from_states))


def request_cancel(db: Database, job_id: int) -> None:
    db.table("jobs").update(job_id, {"cancel_requested": 1})


def requeue_job(db: Database, job_id: int) -> Job:
    """Queue an interrupted (or failed, or cancelled) resumable job again, to resume it."""
    job = get_job(db, job_id)
    if not job.can_resume:
        why = "cannot be resumed" if not job.resumable else f"is {job.state}"
        raise Conflict(f"Job {job_id} ({job.kind}) {why}; only stopped resumable jobs resume.")
    values = {
        "state": "queued",
        "cancel_requested": 0,
        "error": None,
        "exit_code": None,
        "last_lines": None,
        "finished_at": None,
        "pid": None,
        "pid_started": None,
    }
    marks = ", ".join("?" for _ in RESUMABLE_STATES)
    if not _update(db, job_id, values, f"state in ({marks})", list(RESUMABLE_STATES)):
        raise Conflict(f"Job {job_id} changed meanwhile; try again.")
    return get_job(db, job_id)
