"""The runner in the server: starts queued jobs as worker processes and watches them.

One accelerator-class job runs at a time (training, inference and FFN share the GPU) and a
small pool of CPU-class jobs beside it. Each running job has a watcher thread that reads
the worker's output line by line: reports update the job row and are relayed through
`notify`; every other line goes to the job's log. When the worker ends, the watcher
records the outcome (done, failed with its exit code and last lines, cancelled, or
interrupted when the server is stopping) and the next queued job starts.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from unem.jobs import control, processes, protocol, table
from unem.jobs.kinds import KindRegistry, LazyKinds
from unem.jobs.table import Job
from unem.plugins import plugin_paths
from unem.workspace import Workspace

log = logging.getLogger(__name__)
Notify = Callable[[str, dict[str, Any]], None]  # ("updated" | "progress" | "log", payload)
SLOTS = {"accelerator": 1, "cpu": 2}
PROGRESS_INTERVAL = 0.05  # s between relayed progress events of one job
LOG_INTERVAL = 0.2  # s between relayed batches of log lines
DB_INTERVAL = 0.5  # s between progress writes to the database
LAST_LINES = 20  # of the log, kept with a failed job
EXIT_DRAIN = 0.5  # s to read what a finished worker left in the pipe
STOPPED = "The server stopped while this job ran."
QUEUE_POLL = 2.0  # s between looks for jobs queued by other processes (the command line)
LOCK_NAME = ".runner.lock"
MAX_LINE = 64 * 1024  # bytes of output handled as one line at most


def _no_notify(event: str, payload: dict[str, Any]) -> None:
    pass


@dataclass
class Rate:
    """The ETA of a job from the steps done since its first report."""

    first: tuple[float, int] | None = None

    def eta(self, step: int, total: int, now: float) -> float | None:
        if self.first is None or step < self.first[1]:
            self.first = (now, step)
            return None
        elapsed, done = now - self.first[0], step - self.first[1]
        if done <= 0 or total <= step or elapsed <= 0:
            return None
        return round((total - step) * elapsed / done, 1)


@dataclass
class Run:
    """A running job as its watcher sees it."""

    job: Job
    process: subprocess.Popen[bytes] | None = None
    step: int = 0
    total: int = 0
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    eta: float | None = None
    rate: Rate = field(default_factory=Rate)
    result: Any = None
    has_result: bool = False
    error: str | None = None
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=LAST_LINES)
    )
    pending_lines: list[str] = field(default_factory=list)
    progress_dirty: bool = False
    db_dirty: bool = False
    last_progress: float = 0.0
    last_log: float = 0.0
    last_db: float = 0.0

    def progress_json(self) -> dict[str, Any]:
        return {
            "id": self.job.id,
            "state": "running",
            "step": self.step,
            "total": self.total,
            "message": self.message,
            "metrics": self.metrics,
            "eta_seconds": self.eta,
        }


class JobRunner:
    def __init__(
        self,
        ws: Workspace,
        notify: Notify = _no_notify,
        *,
        plugins: Sequence[Path] = (),
        kinds: Callable[[], KindRegistry] | None = None,
        slots: Mapping[str, int] = SLOTS,
        grace: float = processes.GRACE,
        queue_poll: float = QUEUE_POLL,
    ) -> None:
        self.ws = ws
        self.notify = notify
        # The repository's and the workspace's plugins/ folders, then the configured ones.
        self.plugins = plugin_paths(plugins, ws.root)
        self.kinds = kinds or LazyKinds(self.plugins)
        self.slots = dict(slots)
        self.grace = grace
        self.queue_poll = queue_poll
        self.lock = threading.RLock()
        self.active: dict[int, Run] = {}
        self.threads: dict[int, threading.Thread] = {}
        self.stopping = False
        self.in_charge = False  # this runner holds the workspace's lock: it runs the jobs
        self._lock_file: IO[bytes] | None = None
        self._stopped = threading.Event()

    # ---- the API the web layer and tests call ----

    def start(self) -> list[Job]:
        """Recover what the last server left running, then start queued jobs.

        Only one server runs a workspace's jobs: a second one started on the same
        workspace queues jobs for the first and never touches its workers.
        """
        self.in_charge = self._take_lock()
        if not self.in_charge:
            log.warning("another server runs the jobs of %s; this one only queues", self.ws.root)
            return []
        recovered = control.recover_jobs(self.ws, self.grace)
        for job in recovered:
            self.notify("updated", job.to_json())
        self.schedule()
        threading.Thread(target=self._poll_queue, daemon=True, name="job-queue").start()
        return recovered

    def _take_lock(self) -> bool:
        try:
            import fcntl
        except ImportError:  # Windows: one server per workspace is up to the user
            return True
        self._lock_file = (self.ws.root / "jobs" / LOCK_NAME).open("ab")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            return False
        return True

    def _poll_queue(self) -> None:
        while not self._stopped.wait(self.queue_poll):
            try:
                self.schedule()
            except Exception:
                log.exception("scheduling jobs failed")

    def submit(self, kind_name: str, options: Mapping[str, Any], user: str) -> Job:
        kind = self.kinds().get(kind_name)
        valid = kind.validate(options)
        if kind.check is not None:
            kind.check(self.ws, valid)
        job = table.create_job(
            self.ws.db,
            kind.name,
            kind.job_title(valid),
            valid.model_dump(mode="json"),
            kind.resource,
            kind.resumable,
            user,
        )
        self.notify("updated", job.to_json())
        self.schedule()
        return table.get_job(self.ws.db, job.id)

    def cancel(self, job_id: int) -> Job:
        control.cancel_job(self.ws, job_id, self.grace)
        with self.lock:
            thread = self.threads.get(job_id)
        if thread is not None:
            thread.join(timeout=2.0)  # its watcher records the outcome and tells the clients
        job = table.get_job(self.ws.db, job_id)
        if thread is None:
            self.notify("updated", job.to_json())
        return job

    def resume(self, job_id: int) -> Job:
        job = table.requeue_job(self.ws.db, job_id)
        self.notify("updated", job.to_json())
        self.schedule()
        return table.get_job(self.ws.db, job_id)

    def list(self, states: Sequence[str] | None = None, limit: int = 200) -> list[Job]:
        return table.list_jobs(self.ws.db, states, limit)

    def get(self, job_id: int) -> Job:
        return table.get_job(self.ws.db, job_id)

    def log_path(self, job_id: int) -> Path:
        return self.ws.root / table.get_job(self.ws.db, job_id).log_path

    def stop(self) -> None:
        """Stop every worker (their jobs become `interrupted`) and wait for the watchers."""
        self._stopped.set()
        with self.lock:
            self.stopping = True
            runs = list(self.active.values())
        stoppers = [
            threading.Thread(target=self._stop_run, args=(run,), daemon=True) for run in runs
        ]
        for thread in stoppers:
            thread.start()
        with self.lock:
            watchers = list(self.threads.values())
        for thread in [*stoppers, *watchers]:
            thread.join(timeout=self.grace + 3)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock for the next server
            self._lock_file = None

    # ---- scheduling ----

    def schedule(self) -> None:
        """Start as many queued jobs as the free slots allow, oldest first."""
        with self.lock:
            if self.stopping or not self.in_charge:
                return
            busy = collections.Counter(run.job.resource for run in self.active.values())
            for job in table.queued_jobs(self.ws.db):
                if busy[job.resource] >= self.slots.get(job.resource, 1):
                    continue
                if table.claim_job(self.ws.db, job.id):
                    busy[job.resource] += 1
                    self._launch(table.get_job(self.ws.db, job.id))

    def _launch(self, job: Job) -> None:
        run = Run(job)
        self.active[job.id] = run
        thread = threading.Thread(
            target=self._watch, args=(run,), daemon=True, name=f"job-{job.id}"
        )
        self.threads[job.id] = thread
        thread.start()

    def _stop_run(self, run: Run) -> None:
        if run.process is not None:
            processes.stop_group(run.process.pid, grace=self.grace)

    def worker_env(self) -> dict[str, str]:
        source_root = str(Path(__file__).resolve().parents[2])  # where `unem` is importable
        python_path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
        return {
            **os.environ,
            "PYTHONPATH": python_path,
            "PYTHONUNBUFFERED": "1",
            "UNEM_WORKSPACE": str(self.ws.root),
            "UNEM_PLUGINS": os.pathsep.join(str(p) for p in self.plugins),
        }

    # ---- the watcher of one job ----

    def _watch(self, run: Run) -> None:
        job = run.job
        folder = table.job_folder(self.ws.root, job.id)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with (self.ws.root / job.log_path).open("a", encoding="utf-8") as log_file:
                self._supervise(run, log_file)
        except Exception as error:  # never leave a job `running` because the watcher broke
            log.exception("watching job %s failed", job.id)
            table.finish_job(self.ws.db, job.id, "failed", error=f"The runner failed: {error}")
        finally:
            if run.process is not None and run.process.poll() is None:
                processes.stop_group(run.process.pid, grace=self.grace)
            with self.lock:
                self.active.pop(job.id, None)
                self.threads.pop(job.id, None)
            self.notify("updated", table.get_job(self.ws.db, job.id).to_json())
            self.schedule()

    def _supervise(self, run: Run, log_file: IO[str]) -> None:
        job = run.job
        attempt = f" (attempt {job.attempts})" if job.attempts > 1 else ""
        self._log(
            run, log_file, f"--- {table.now()} {job.kind} job {job.id}{attempt} by {job.user}"
        )
        try:
            run.process = processes.start_process(
                processes.worker_command(job.id, self.ws.root), env=self.worker_env()
            )
        except OSError as error:
            table.finish_job(
                self.ws.db, job.id, "failed", error=f"The worker did not start: {error}"
            )
            return
        process = run.process
        ident = processes.ProcessId.of(process.pid)
        table.record_process(self.ws.db, job.id, process.pid, ident.started if ident else 0.0)
        self.notify("updated", table.get_job(self.ws.db, job.id).to_json())
        if self.stopping or table.get_job(self.ws.db, job.id).cancel_requested:
            processes.stop_group(process.pid, grace=self.grace)
        self._read(run, process, log_file)
        code = process.wait()
        self._flush(run, log_file, force=True)
        self._finish(run, code, log_file)
        self._flush(run, log_file, force=True)  # the outcome's log line

    def _read(self, run: Run, process: subprocess.Popen[bytes], log_file: IO[str]) -> None:
        """Handle the worker's lines until its output ends (or it ended and went quiet)."""
        lines: queue.Queue[bytes | None] = queue.Queue()
        stdout = process.stdout
        reader = threading.Thread(
            target=_pump, args=(stdout, lines), daemon=True, name=f"job-{run.job.id}-reader"
        )
        reader.start()
        exited_at: float | None = None
        while True:
            try:
                line = lines.get(timeout=self._next_flush(run))
            except queue.Empty:
                line = b""
            if line is None:
                break
            if line:
                self._handle(run, line.decode("utf-8", "replace"), log_file)
            self._flush(run, log_file)
            if exited_at is None and process.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > EXIT_DRAIN:
                # the worker is gone but something it started holds the pipe open
                processes.stop_group(process.pid, grace=self.grace)
                exited_at = float("inf")

    def _next_flush(self, run: Run) -> float:
        if run.progress_dirty or run.pending_lines or run.db_dirty:
            return min(PROGRESS_INTERVAL, LOG_INTERVAL)
        return 0.25  # also how often a worker that exited is noticed

    def _handle(self, run: Run, line: str, log_file: IO[str]) -> None:
        text, report = protocol.decode(line)
        if text:
            self._log(run, log_file, text)
        if report is None:
            return
        kind = report["report"]
        if kind == "progress":
            self._progress(run, report, log_file)
        elif kind == "result":
            run.result, run.has_result = report.get("result"), True
        elif kind == "error":
            run.error = str(report.get("message") or "The job failed.")
            self._log(run, log_file, f"error: {run.error}")
        elif kind == "started":
            self._log(run, log_file, f"worker {report.get('pid')} started")

    def _progress(self, run: Run, report: dict[str, Any], log_file: IO[str]) -> None:
        run.step = protocol.integer(report.get("step"))
        run.total = protocol.integer(report.get("total"))
        run.message = str(report.get("message") or "")[:500]
        run.metrics = protocol.clean_metrics(report.get("metrics"))
        run.eta = run.rate.eta(run.step, run.total, time.monotonic())
        run.progress_dirty = run.db_dirty = True
        if run.message:
            self._log(run, log_file, f"[{run.step}/{run.total}] {run.message}")

    def _log(self, run: Run, log_file: IO[str], text: str) -> None:
        log_file.write(text + "\n")
        log_file.flush()
        run.tail.append(text)
        run.pending_lines.append(text)

    def _flush(self, run: Run, log_file: IO[str], force: bool = False) -> None:
        """Relay what is due: progress first (latency), then log lines, then the row."""
        now = time.monotonic()
        if run.progress_dirty and (force or now - run.last_progress >= PROGRESS_INTERVAL):
            run.progress_dirty, run.last_progress = False, now
            self.notify("progress", run.progress_json())
        if run.pending_lines and (force or now - run.last_log >= LOG_INTERVAL):
            lines, run.pending_lines, run.last_log = run.pending_lines, [], now
            self.notify("log", {"id": run.job.id, "lines": lines})
        if run.db_dirty and (force or now - run.last_db >= DB_INTERVAL):
            run.db_dirty, run.last_db = False, now
            table.record_progress(
                self.ws.db, run.job.id, run.step, run.total, run.message, run.metrics, run.eta
            )

    def _finish(self, run: Run, code: int, log_file: IO[str]) -> None:
        job_id, db = run.job.id, self.ws.db
        if run.has_result and code == 0:
            self._log(run, log_file, "--- done")
            table.finish_job(db, job_id, "done", result=run.result, exit_code=0)
        elif table.get_job(db, job_id).cancel_requested:
            self._log(run, log_file, "--- cancelled")
            table.finish_job(db, job_id, "cancelled", error="Cancelled.", exit_code=code)
        elif self.stopping:
            self._log(run, log_file, "--- interrupted: the server stopped")
            table.finish_job(db, job_id, "interrupted", error=STOPPED, exit_code=code)
        else:
            last_lines = list(run.tail)
            self._log(run, log_file, f"--- failed: {exit_message(code)}")
            table.finish_job(
                db,
                job_id,
                "failed",
                error=run.error or exit_message(code),
                exit_code=code,
                last_lines=last_lines,
            )


def exit_message(code: int) -> str:
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"The worker was killed by {name} (exit code {code})."
    if code == 0:
        return "The worker ended without a result (exit code 0)."
    return f"The worker exited with code {code}."


def _pump(stream: Any, lines: queue.Queue[bytes | None]) -> None:
    """Move the worker's output lines into `lines`; None at the end."""
    try:
        # bounded: a progress bar redrawn with \r and no newline must not grow forever
        for line in iter(lambda: stream.readline(MAX_LINE), b""):
            lines.put(line)
    finally:
        lines.put(None)
        stream.close()
