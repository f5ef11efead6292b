"""Cancel and recovery, shared by the server's runner and the command line."""

from __future__ import annotations

import time

from unem.errors import Conflict
from unem.jobs import processes, table
from unem.jobs.table import Job
from unem.workspace import Workspace

INTERRUPTED = "The server stopped while this job ran."


def recover_jobs(ws: Workspace, grace: float = processes.GRACE) -> list[Job]:
    """At start-up: jobs still `running` lost their server; stop their workers if any
    still run, and mark them `interrupted` (a resumable one can then be resumed)."""
    recovered = []
    for job in table.list_jobs(ws.db, ["running"], limit=10_000):
        stopped = processes.stop_recorded(job.pid, job.pid_started, grace)
        note = " Its worker was still running and has been stopped." if stopped else ""
        if table.finish_job(ws.db, job.id, "interrupted", error=INTERRUPTED + note):
            recovered.append(table.get_job(ws.db, job.id))
    return recovered


def cancel_job(
    ws: Workspace, job_id: int, grace: float = processes.GRACE, settle: float = 2.0
) -> Job:
    """Cancel a queued job, or stop a running one's whole process group.

    The server's runner then records the job as `cancelled` when its worker has gone;
    if nothing does within `settle` s (no server runs: `jobs cancel` on the command
    line), this records it.
    """
    job = table.get_job(ws.db, job_id)
    if job.state == "queued" and table.finish_job(
        ws.db, job_id, "cancelled", error="Cancelled before it started.", from_states=("queued",)
    ):
        return table.get_job(ws.db, job_id)
    job = table.get_job(ws.db, job_id)
    if job.state != "running":
        raise Conflict(
            f"Job {job_id} is {job.state}; only queued or running jobs can be cancelled."
        )
    table.request_cancel(ws.db, job_id)
    processes.stop_recorded(job.pid, job.pid_started, grace)
    deadline = time.monotonic() + settle
    while table.get_job(ws.db, job_id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    table.finish_job(ws.db, job_id, "cancelled", error="Cancelled.")
    return table.get_job(ws.db, job_id)
