"""TensorBoard as a child process over the jobs' event folders, started on first use.

It listens on a free loopback port under the path prefix `/tensorboard`, so the server can
pass requests through unchanged (the web layer's reverse proxy); nobody else reaches it.
Each job's events are in `<workspace>/jobs/<id>/tensorboard`: its run is `<id>/tensorboard`.
It runs without TensorFlow (`unem.jobs.tensorboard_main`): up in about a second.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from unem.errors import UnemError
from unem.jobs import processes

PATH_PREFIX = "/tensorboard"
STARTUP_TIMEOUT = 60.0  # s
RELOAD_INTERVAL = 5  # s between TensorBoard's scans for new events


class Unavailable(UnemError):
    status = 503


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tensorboard_command(logdir: Path, port: int) -> list[str]:
    return processes.module_command(
        processes.TENSORBOARD_MODULE,
        "--logdir",
        str(logdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--path_prefix",
        PATH_PREFIX,
        "--reload_interval",
        str(RELOAD_INTERVAL),
        "--load_fast",
        "false",
    )


def run_url(job_id: int) -> str:
    """The TensorBoard page showing one job's run (its scalars)."""
    return f"{PATH_PREFIX}/#scalars&regexInput=%5E{job_id}%2F"


class TensorBoard:
    """One TensorBoard child process; `port()` starts it if needed and waits until it answers."""

    def __init__(self, logdir: Path, log_file: Path, startup_timeout: float = STARTUP_TIMEOUT):
        self.logdir = logdir
        self.log_file = log_file
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def port(self) -> int:
        with self._lock:
            if self._stopped:
                raise Unavailable("The server is stopping.")
            if not self.running:
                self._start()
            return self._port

    def _start(self) -> None:
        self._port = free_port()
        self.logdir.mkdir(parents=True, exist_ok=True)
        # The accelerator belongs to the jobs; TensorBoard only reads files.
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        with self.log_file.open("ab") as log:
            self.process = processes.start_process(
                tensorboard_command(self.logdir, self._port), env=env, stdout=log
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and not self._stopped:
            if self.process is None or self.process.poll() is not None:
                raise Unavailable(f"TensorBoard did not start: {self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.1)
        self.stop_process()
        if self._stopped:
            raise Unavailable("The server is stopping.")
        raise Unavailable(f"TensorBoard did not answer within {self.startup_timeout:.0f} s.")

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=2)
        try:
            connection.request("GET", PATH_PREFIX + "/data/environment")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return " | ".join(lines[-5:]) or "no output"

    def stop_process(self) -> None:
        if self.process is not None:
            processes.stop_group(self.process.pid)
            self.process.wait(timeout=5)
            self.process = None

    def stop(self) -> None:
        """Stop TensorBoard for good (the server is stopping)."""
        self._stopped = True  # first: a start under way gives up waiting
        with self._lock:
            self.stop_process()
