"""Helpers of the job tests: the test-only kinds, waiting, and the process table."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psutil

from tests.conftest import ROOT

TEST_PLUGIN = ROOT / "tests" / "plugins" / "unem_test_jobs.py"
T = TypeVar("T")


def wait_for(what: Callable[[], T], timeout: float = 30, message: str = "") -> T:
    """The first truthy value of `what()`, polled until `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"still false after {timeout} s: {value!r}")
        time.sleep(0.02)


def running(pid: int) -> bool:
    """Whether `pid` is a process that still runs (a zombie has ended: PID 1 in some
    containers never reaps orphans, so their zombies stay in the table)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def group(pgid: int) -> list[int]:
    """Every running process of process group `pgid`, from the whole process table."""
    import os

    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and running(process.pid):
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return members


def child_pids(message: str) -> list[int]:
    """The pids the test-hang kind reports: "children 12 13"."""
    return [int(word) for word in message.split()[1:]]
