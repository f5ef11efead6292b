"""The job runner with real worker processes: done, failed, cancelled, resumed, recovered.

Kinds from the test plugin make each path deterministic; the real kinds are tested end to
end in test_jobs_kinds.py. Process checks read the whole process table (psutil).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.jobs_support import TEST_PLUGIN, child_pids, group, running, wait_for
from unem.errors import BadInput, Conflict
from unem.jobs import control, processes, table
from unem.jobs.runner import JobRunner, Rate
from unem.jobs.table import Job
from unem.workspace import Workspace

pytestmark = pytest.mark.timeout(60)


class Events:
    """What the runner relayed, by kind, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.seen.append((event, payload))

    def of(self, event: str, job_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [p for e, p in self.seen if e == event and p["id"] == job_id]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def runner(workspace: Workspace, events: Events) -> Iterator[JobRunner]:
    runner = JobRunner(workspace, events, plugins=[TEST_PLUGIN])
    runner.start()
    yield runner
    runner.stop()


def finished(runner: JobRunner, job_id: int, timeout: float = 30) -> Job:
    return wait_for(lambda: (job := runner.get(job_id)).state not in ("queued", "running") and job,
                    timeout, f"job {job_id} never finished")  # fmt: skip


def started_children(runner: JobRunner, job_id: int) -> list[int]:
    """Wait until a test-hang job reports its children; their pids."""
    job = wait_for(lambda: (j := runner.get(job_id)).message.startswith("children") and j)
    return child_pids(job.message)


def test_a_job_runs_in_a_worker_and_reports_progress_and_result(
    runner: JobRunner, events: Events, workspace: Workspace
) -> None:
    job = runner.submit("test-steps", {"steps": 6, "delay": 0.06}, "alice")
    assert job.state in ("queued", "running") and job.title == "6 test steps"
    done = finished(runner, job.id)
    assert done.state == "done", done
    assert done.result == {"steps": 6, "resumed": False}
    assert (done.step, done.total, done.exit_code, done.attempts) == (6, 6, 0, 1)
    assert done.metrics is not None and done.metrics["loss"] == pytest.approx(1 / 6)
    states = [p["state"] for p in events.of("updated", job.id)]
    assert states[0] == "queued" and "running" in states and states[-1] == "done"
    steps = [p["step"] for p in events.of("progress", job.id)]
    assert len(steps) >= 4 and steps == sorted(steps) and steps[-1] == 6
    assert any(p["eta_seconds"] is not None for p in events.of("progress", job.id))
    log = (workspace.root / done.log_path).read_text()
    assert "[3/6] step 3" in log and log.rstrip().endswith("--- done")
    relayed = [line for p in events.of("log", job.id) for line in p["lines"]]
    assert relayed == log.splitlines()
    tensorboard = workspace.root / "jobs" / str(job.id) / "tensorboard"
    assert [p.name.startswith("events.out.tfevents.") for p in tensorboard.iterdir()] == [True]


@pytest.mark.parametrize(
    ("options", "exit_code", "error"),
    [
        ({"how": "exit", "exit_code": 3}, 3, "The worker exited with code 3."),
        ({"how": "kill"}, -signal.SIGKILL, "The worker was killed by SIGKILL (exit code -9)."),
        ({"how": "raise"}, 1, "RuntimeError: something broke"),
    ],
)
def test_a_crashing_worker_fails_its_job_with_exit_code_and_last_lines(
    runner: JobRunner, options: dict[str, Any], exit_code: int, error: str
) -> None:
    job = finished(runner, runner.submit("test-crash", {**options, "lines": 40}, "alice").id)
    assert job.state == "failed"
    assert (job.exit_code, job.error) == (exit_code, error)
    assert job.last_lines is not None and "output line 39" in job.last_lines
    if options["how"] == "raise":
        assert any("Traceback" in line or "raise RuntimeError" in line for line in job.last_lines)
    # the runner survives and runs the next job
    assert finished(runner, runner.submit("test-steps", {"steps": 1}, "alice").id).state == "done"


def test_cancel_stops_the_whole_process_group_within_two_seconds(runner: JobRunner) -> None:
    job = runner.submit("test-hang", {"children": 2, "ignore_sigterm": True}, "alice")
    children = started_children(runner, job.id)
    worker = runner.get(job.id).pid
    assert worker is not None and len(children) == 2
    assert all(running(pid) for pid in [worker, *children])
    assert set(group(worker)) == {worker, *children}
    started = time.monotonic()
    cancelled = runner.cancel(job.id)
    assert time.monotonic() - started < 2.0
    assert cancelled.state == "cancelled", cancelled
    assert group(worker) == [] and not any(running(pid) for pid in [worker, *children])
    with pytest.raises(Conflict):
        runner.cancel(job.id)


def test_a_queued_job_is_cancelled_at_once_and_never_starts(runner: JobRunner) -> None:
    first = runner.submit("test-gpu", {"steps": 20, "delay": 0.05}, "alice")
    second = runner.submit("test-gpu", {"steps": 1}, "alice")
    assert runner.get(second.id).state == "queued"  # one accelerator job at a time
    assert runner.cancel(second.id).state == "cancelled"
    assert finished(runner, first.id).state == "done"
    assert runner.get(second.id).started_at is None


def test_one_accelerator_job_at_a_time_and_cpu_jobs_beside_it(runner: JobRunner) -> None:
    gpu = [runner.submit("test-gpu", {"steps": 8, "delay": 0.05}, "a") for _ in range(2)]
    cpu = [runner.submit("test-steps", {"steps": 8, "delay": 0.05}, "a") for _ in range(3)]
    wait_for(lambda: runner.get(cpu[1].id).state == "running")
    states = collections.Counter(runner.get(j.id).state for j in gpu)
    assert states == {"running": 1, "queued": 1}
    assert runner.get(cpu[2].id).state == "queued"  # the CPU pool has two slots
    jobs = [finished(runner, j.id) for j in [*gpu, *cpu]]
    assert all(j.state == "done" for j in jobs)
    first, second = (runner.get(j.id) for j in gpu)
    assert second.started_at is not None and first.finished_at is not None
    assert second.started_at >= first.finished_at  # never two on the accelerator


def test_bad_options_and_unknown_kinds_are_refused_before_a_worker_starts(
    runner: JobRunner, workspace: Workspace
) -> None:
    with pytest.raises(BadInput, match="steps") as refused:
        runner.submit("test-steps", {"steps": -1}, "alice")
    assert refused.value.detail == [
        {"field": "steps", "message": "Input should be greater than or equal to 0"}
    ]
    with pytest.raises(BadInput, match="Unknown job kind 'nope'"):
        runner.submit("nope", {}, "alice")
    with pytest.raises(BadInput, match="No dataset"):
        runner.submit("pyramid", {"dataset": "missing"}, "alice")
    assert table.list_jobs(workspace.db) == []


def test_stopping_the_runner_interrupts_running_jobs_and_resume_continues(
    workspace: Workspace, events: Events
) -> None:
    runner = JobRunner(workspace, events, plugins=[TEST_PLUGIN])
    runner.start()
    job = runner.submit("test-hang", {"children": 1}, "alice")
    children = started_children(runner, job.id)
    runner.stop()
    stopped = runner.get(job.id)
    assert stopped.state == "interrupted" and stopped.can_resume
    assert not any(running(pid) for pid in [stopped.pid or 0, *children])
    again = JobRunner(workspace, events, plugins=[TEST_PLUGIN])
    again.start()
    try:
        resumed = again.resume(job.id)
        assert resumed.state in ("queued", "running")
        started_children(again, job.id)
        assert again.get(job.id).attempts == 2
        assert again.cancel(job.id).state == "cancelled"
        with pytest.raises(Conflict, match="cannot be resumed"):
            again.resume(finished(again, again.submit("test-crash", {}, "a").id).id)
    finally:
        again.stop()


def test_a_resumed_job_knows_it_resumes(
    runner: JobRunner, events: Events, workspace: Workspace
) -> None:
    job = runner.submit("test-steps", {"steps": 20, "delay": 0.04}, "alice")
    wait_for(lambda: any(p["step"] >= 1 for p in events.of("progress", job.id)))
    assert runner.cancel(job.id).state == "cancelled"
    runner.resume(job.id)
    done = finished(runner, job.id)
    assert done.state == "done" and done.result == {"steps": 20, "resumed": True}
    log = (workspace.root / done.log_path).read_text()
    assert "--- cancelled" in log and "(attempt 2)" in log


def test_recovery_interrupts_running_jobs_and_stops_their_orphan_workers(
    workspace: Workspace,
) -> None:
    """As after a killed server: a worker whose server is gone is found and stopped."""
    job = table.create_job(workspace.db, "test-hang", "t", {"children": 1}, "cpu", True, "a")
    assert table.claim_job(workspace.db, job.id)
    env = {**os.environ, "UNEM_PLUGINS": str(TEST_PLUGIN)}
    worker = processes.start_process(processes.worker_command(job.id, workspace.root), env=env)
    ident = processes.ProcessId.of(worker.pid)
    assert ident is not None
    table.record_process(workspace.db, job.id, worker.pid, ident.started)
    assert worker.stdout is not None
    wait_for(lambda: b"children" in worker.stdout.readline())  # the worker is up
    [recovered] = control.recover_jobs(workspace)
    worker.wait(timeout=5)
    assert recovered.state == "interrupted" and "has been stopped" in (recovered.error or "")
    assert group(worker.pid) == []


def test_recovery_never_kills_a_process_that_reuses_a_recorded_pid(
    workspace: Workspace,
) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                start_new_session=True)  # fmt: skip
    try:
        job = table.create_job(workspace.db, "test-hang", "t", {}, "cpu", True, "a")
        table.claim_job(workspace.db, job.id)
        ident = processes.ProcessId.of(stranger.pid)
        assert ident is not None
        table.record_process(workspace.db, job.id, stranger.pid, ident.started - 100.0)
        [recovered] = control.recover_jobs(workspace)
        assert (recovered.state, recovered.error) == ("interrupted", control.INTERRUPTED)
        time.sleep(0.2)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_second_server_on_the_workspace_only_queues_and_never_recovers(
    workspace: Workspace,
) -> None:
    first = JobRunner(workspace, plugins=[TEST_PLUGIN], queue_poll=0.05)
    first.start()
    second = JobRunner(workspace, plugins=[TEST_PLUGIN])
    try:
        job = first.submit("test-hang", {"children": 0, "ignore_sigterm": False}, "a")
        wait_for(lambda: first.get(job.id).pid)
        assert second.start() == [] and not second.in_charge  # the running job is left alone
        assert first.get(job.id).state == "running"
        queued = second.submit("test-steps", {"steps": 1}, "b")  # the first server runs it
        assert finished(first, queued.id).state == "done"
        assert second.cancel(job.id).state == "cancelled"
    finally:
        second.stop()
        first.stop()


def test_eta_follows_the_rate_since_the_first_report() -> None:
    rate = Rate()
    assert rate.eta(10, 110, now=100.0) is None
    assert rate.eta(20, 110, now=102.0) == pytest.approx(18.0)  # 10 steps in 2 s, 90 left
    assert rate.eta(110, 110, now=120.0) is None
