"""Job benchmarks on a live server: submit → worker running, and progress relay latency.

`main.py serve` runs with the test-only job kinds (`tests/plugins/unem_test_jobs.py`); an
admin submits over HTTP and a python-socketio client (WebSocket) listens on `/jobs`.

- submit → running: from `POST /api/jobs` until the `/jobs` namespace delivers the worker's
  first progress report (the kind's own code is running), against a bare subprocess start
  (`python -c` printing a line, read through a pipe), interleaved. One job at a time.
- relay: from the worker's write of a progress report (its `time.monotonic()`, carried in
  the report; CLOCK_MONOTONIC is system-wide on Linux) until the client has the
  `job:progress` event, against a `ping` round trip on `/jobs` sent half-way between two
  reports, interleaved. Reports are 100 ms apart, more than the relay's 50 ms throttle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.bench.dojo_stats import PercentileResult
from tests.bench.results import Result, Target
from tests.conftest import LiveServer, start_server, stop_server
from tests.jobs_support import TEST_PLUGIN
from tests.web.conftest import SocketClient
from unem.web.events import EVENTS, NAMESPACES

JOBS = NAMESPACES["JOBS"]
TIMEOUT = 60.0
REPORT_INTERVAL = 0.1  # s between the progress reports of the relay job
WARM_UP = 3  # first reports of the relay job, not measured (the worker's first writes)
BARE = "print('ready', flush=True)"


class Listener:
    """A /jobs client noting when each job's first progress and each report arrived."""

    def __init__(self, server: LiveServer, session: requests.Session) -> None:
        self.first_progress: dict[int, float] = {}
        self.relays: dict[int, list[float]] = {}
        self.finished: set[int] = set()
        self.changed = threading.Condition()
        self.client = SocketClient()
        self.client.on(EVENTS["JOB_PROGRESS"], self._on_progress, namespace=JOBS)
        self.client.on(EVENTS["JOB_UPDATED"], self._on_updated, namespace=JOBS)
        cookie = f"unem_session={session.cookies['unem_session']}"
        self.client.connect(server.base, headers={"Cookie": cookie}, namespaces=[JOBS],
                            transports=["websocket"], wait_timeout=10)  # fmt: skip

    def _on_progress(self, progress: dict[str, Any]) -> None:
        now = time.monotonic()
        with self.changed:
            self.first_progress.setdefault(progress["id"], now)
            sent = progress["metrics"].get("sent")
            if sent is not None:
                self.relays.setdefault(progress["id"], []).append(now - sent)
            self.changed.notify_all()

    def _on_updated(self, job: dict[str, Any]) -> None:
        with self.changed:
            if job["state"] not in ("queued", "running"):
                self.finished.add(job["id"])
            self.changed.notify_all()

    def wait(self, condition: Callable[[], bool]) -> None:
        with self.changed:
            if not self.changed.wait_for(condition, TIMEOUT):
                raise TimeoutError("no event from the /jobs namespace")

    def ping(self) -> float:
        """Seconds of one `ping` round trip on /jobs."""
        start = time.monotonic()
        self.client.call(EVENTS["JOBS_PING"], {"t": start}, namespace=JOBS, timeout=TIMEOUT)
        return time.monotonic() - start

    def close(self) -> None:
        self.client.disconnect()


def bare_start() -> float:
    """Seconds until a fresh `python -c` has printed a line we read."""
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", BARE], stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.readline()
    seconds = time.monotonic() - start
    process.wait()
    return seconds


def submit(server: LiveServer, session: requests.Session, **options: Any) -> int:
    response = session.post(f"{server.base}/api/jobs", timeout=TIMEOUT,
                            json={"kind": "test-steps", "options": options})  # fmt: skip
    response.raise_for_status()
    job_id: int = response.json()["id"]
    return job_id


def job_start(server: LiveServer, session: requests.Session, listener: Listener) -> float:
    """Seconds from the submission of a job until its worker's first report arrived."""
    start = time.monotonic()
    job_id = submit(server, session, steps=0)
    listener.wait(lambda: job_id in listener.first_progress)
    seconds = listener.first_progress[job_id] - start
    listener.wait(lambda: job_id in listener.finished)  # no overlap with the next sample
    return seconds


def relays_and_pings(
    server: LiveServer, session: requests.Session, listener: Listener, samples: int
) -> tuple[list[float], list[float]]:
    """Relay latencies of one job's reports, and pings sent between them (ms)."""
    job_id = submit(server, session, steps=samples + WARM_UP, delay=REPORT_INTERVAL)
    pings = []
    listener.wait(lambda: job_id in listener.first_progress)
    while job_id not in listener.finished:
        time.sleep(REPORT_INTERVAL)  # the reports come at the same pace, in between
        pings.append(listener.ping() * 1000)
    relays = [seconds * 1000 for seconds in listener.relays[job_id][1 + WARM_UP :]]
    return relays, pings[WARM_UP:]


def run_job_benchmarks(scratch: Path, quick: bool, log: Callable[[str], None]) -> list[Result]:
    rounds, samples = (5, 40) if quick else (15, 200)
    workspace = scratch / "jobs-workspace"
    server = start_server(workspace, "--plugin", str(TEST_PLUGIN))
    try:
        session = server.admin_session()
        listener = Listener(server, session)
        try:
            bare_start()
            job_start(server, session, listener)  # warm-up: imports, the kinds, the cache
            log(f"  submit → running, {rounds} jobs against {rounds} bare subprocesses")
            starts, bares = [], []
            for i in range(rounds):
                pair = [(bares, bare_start), (starts, lambda: job_start(server, session, listener))]
                for found, measure in pair if i % 2 == 0 else pair[::-1]:
                    found.append(measure() * 1000)
            log(f"  progress relay, {samples} reports {REPORT_INTERVAL * 1000:.0f} ms apart")
            relays, pings = relays_and_pings(server, session, listener, samples)
        finally:
            listener.close()
    finally:
        stop_server(server)
        shutil.rmtree(workspace, ignore_errors=True)
    return [
        Result(
            "job submit → worker running",
            "ms",
            starts,
            bares,
            Target("value", False, 1000, "ms"),
            note="from POST /api/jobs to the worker's first report on /jobs; baseline: a "
            "bare `python -c` start read through a pipe. The worker imports sqlite-utils "
            "(with numpy) and pydantic, which every real kind needs; target: under 1 s",
        ),
        *(
            PercentileResult(
                f"job progress relay p{q}",
                "ms",
                relays,
                pings,
                Target("ratio", False, 2.0 if q == 50 else 3.0),
                quantile=q,
                note="worker write → Socket.IO client; baseline: a `ping` round trip on "
                "/jobs, sent between reports",
            )
            for q in (50, 99)
        ),
    ]
