"""Run one job from the command line and wait for it: `main.py train`, `infer`, `run`.

The job goes through the same table, worker process and log as one started from the
browser, so it is listed on the jobs page, can be resumed after Ctrl-C, and writes its
TensorBoard run. When a server already runs this workspace's jobs, the job is queued for
that server and this command only follows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from unem.jobs import table
from unem.jobs.runner import JobRunner
from unem.jobs.table import Job
from unem.workspace import Workspace

FINISHED = ("done", "failed", "cancelled", "interrupted")
POLL_SECONDS = 0.2

Watch = Callable[[Job], None]  # told of the job's state and progress while it runs


def run_in_foreground(
    ws: Workspace,
    kind: str,
    options: Mapping[str, Any],
    user: str,
    plugins: Sequence[Path] = (),
    watch: Watch | None = None,
) -> Job:
    """Submit a job, run it (or let the workspace's server run it), return it once over.

    Ctrl-C stops the worker; the job is then `interrupted` and can be resumed.
    """
    runner = JobRunner(ws, plugins=plugins)
    runner.start()
    try:
        job = runner.submit(kind, options, user)
        return follow(ws, job.id, watch)
    finally:
        runner.stop()


def follow(ws: Workspace, job_id: int, watch: Watch | None = None) -> Job:
    """Poll the job's row until it has finished, telling `watch` of each change."""
    seen: tuple[Any, ...] = ()
    while True:
        job = table.get_job(ws.db, job_id)
        state = (job.state, job.step, job.total, job.message)
        if watch is not None and state != seen:
            watch(job)
            seen = state
        if job.state in FINISHED:
            return job
        time.sleep(POLL_SECONDS)
