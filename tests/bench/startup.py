"""Start-up benchmarks: `main.py serve` until /api/health answers, against a bare Flask app.

Both servers are launched the same way (a fresh interpreter, a free port, /api/health polled
with the same loop); one unmeasured launch of each warms the disk cache first. The idle RSS
is read a second after the first answer.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.bench.results import Result, Target
from tests.conftest import free_port, start_server, stop_server, wait_for_health

MIB = 2**20
SETTLE = 1.0  # seconds between the first answer and the RSS reading
BARE_FLASK = """
import sys
from flask import Flask

app = Flask(__name__)


@app.get("/api/health")
def health():
    return {"status": "ok"}


app.run(host="127.0.0.1", port=int(sys.argv[1]))
"""


def launch_bare_flask() -> tuple[float, int]:
    """Seconds until the bare app answers, and its RSS once idle."""
    port = free_port()
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_FLASK, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}", start + 60)
        seconds = time.monotonic() - start
        time.sleep(SETTLE)
        return seconds, psutil.Process(process.pid).memory_info().rss
    finally:
        process.terminate()
        process.wait(timeout=15)


def launch_unem(workspace: Path) -> tuple[float, int]:
    """Seconds from `main.py serve --no-browser` until /api/health answers, and idle RSS."""
    start = time.monotonic()
    server = start_server(workspace)
    seconds = time.monotonic() - start
    try:
        time.sleep(SETTLE)
        return seconds, psutil.Process(server.process.pid).memory_info().rss
    finally:
        stop_server(server)


def run_startup_benchmarks(scratch: Path, repeats: int, log: Callable[[str], None]) -> list[Result]:
    workspace = scratch / "workspace"
    launch_bare_flask()
    launch_unem(workspace)  # warm-up; also creates the workspace, as a first start would
    unem: list[tuple[float, int]] = []
    bare: list[tuple[float, int]] = []
    for repeat in range(repeats):
        runs = [(bare, launch_bare_flask), (unem, lambda: launch_unem(workspace))]
        for samples, launch in runs if repeat % 2 == 0 else runs[::-1]:
            samples.append(launch())
        log(
            f"  start-up run {repeat + 1}: UNEM {unem[-1][0]:.2f} s, bare Flask {bare[-1][0]:.2f} s"
        )
    return [
        Result(
            "start-up to /api/health",
            "s",
            [s for s, _ in unem],
            [s for s, _ in bare],
            Target("ratio", False, 3.0),
            note="baseline: `python -c` with a one-route Flask app, same poll loop",
        ),
        Result(
            "server RSS when idle",
            "MiB",
            [r / MIB for _, r in unem],
            [r / MIB for _, r in bare],
            Target("value", False, 200, "MiB"),
            note="read 1 s after the first answer; baseline: the bare Flask app",
        ),
    ]
