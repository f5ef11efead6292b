"""Child processes of the server: how they are started, recognised and stopped.

Each worker (and TensorBoard) starts in its own session, so it leads a process group that
holds everything it starts; stopping it signals the whole group: SIGTERM, then SIGKILL
after a grace period. A process is recognised by its pid *and* its start time, so a pid
the system has since given to another program is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

WORKER_MODULE = "unem.jobs.worker"
TENSORBOARD_MODULE = "unem.jobs.tensorboard_main"  # TensorBoard without TensorFlow
# A frozen bundle has no `python -m`: its executable takes this flag instead (see unem.cli).
RUN_MODULE_FLAG = "--run-module"
RUNNABLE_MODULES = (WORKER_MODULE, TENSORBOARD_MODULE)
GRACE = 1.0  # seconds between SIGTERM and SIGKILL
POLL = 0.02
SAME_START = 0.05  # seconds: start times of one process read twice differ by less


def module_command(module: str, *args: str) -> list[str]:
    """The argv running `python -m module args`, or the bundle's own executable with a flag."""
    if getattr(sys, "frozen", False):
        return [sys.executable, RUN_MODULE_FLAG, module, *args]
    return [sys.executable, "-m", module, *args]


def worker_command(job_id: int, workspace: Path) -> list[str]:
    return module_command(WORKER_MODULE, str(job_id), "--workspace", str(workspace))


def start_process(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    stdout: int | IO[Any] = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new process group; stderr goes with stdout."""
    options: dict[str, Any] = {}
    if os.name == "nt":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        options["start_new_session"] = True
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        **options,
    )


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: float  # psutil's create_time: seconds since the epoch

    @staticmethod
    def of(pid: int) -> ProcessId | None:
        try:
            return ProcessId(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None

    def alive(self) -> bool:
        """Whether this very process (not a later one with its pid) still runs."""
        now = ProcessId.of(self.pid)
        return now is not None and abs(now.started - self.started) < SAME_START and _live(self.pid)


def _live(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def group_members(pgid: int, since: float = 0.0) -> list[int]:
    """Live (not zombie) processes of process group `pgid` started at `since` or later."""
    if os.name == "nt":
        return _tree(pgid)
    members = []
    for process in psutil.process_iter(["status", "create_time"]):
        try:
            if (
                os.getpgid(process.pid) == pgid
                and process.info["status"] != psutil.STATUS_ZOMBIE
                and process.info["create_time"] >= since - SAME_START
            ):
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return members


def _tree(pid: int) -> list[int]:
    try:
        leader = psutil.Process(pid)
        return [pid, *(child.pid for child in leader.children(recursive=True))]
    except psutil.Error:
        return []


def _signal_group(pgid: int, members: list[int], sig: int) -> None:
    if os.name == "nt":
        for pid in members:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_gone(pgid: int, since: float, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while group_members(pgid, since):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def stop_group(pgid: int, since: float = 0.0, grace: float = GRACE) -> bool:
    """SIGTERM the group, SIGKILL what is left after `grace` s; whether anything ran."""
    members = group_members(pgid, since)
    if not members:
        return False
    _signal_group(pgid, members, signal.SIGTERM)
    if not _wait_gone(pgid, since, grace):
        _signal_group(pgid, group_members(pgid, since), getattr(signal, "SIGKILL", signal.SIGTERM))
        _wait_gone(pgid, since, 1.0)
    return True


def stop_recorded(pid: int | None, started: float | None, grace: float = GRACE) -> bool:
    """Stop the group a worker recorded as (pid, start time) leads; never a stranger's.

    The leader itself is checked by start time. If it is gone, its group may live on
    (children of a crashed worker); a pid is not reused while its group exists, so what
    is left in that group and started after the leader is the worker's.
    """
    if pid is None or started is None:
        return False
    leader = ProcessId.of(pid)
    if leader is not None and abs(leader.started - started) >= SAME_START:
        return False  # the pid now belongs to another program
    return stop_group(pid, since=started, grace=grace)
