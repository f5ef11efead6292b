"""Jobs across server lifetimes, with the real server: killed, restarted, stopped."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.conftest import LiveServer, start_server, stop_server
from tests.jobs_support import TEST_PLUGIN, child_pids, group, running, wait_for
from unem.jobs import table
from unem.workspace import Workspace

pytestmark = pytest.mark.timeout(120)


def job_json(server: LiveServer, session: requests.Session, job_id: int) -> dict[str, Any]:
    response = session.get(f"{server.base}/api/jobs/{job_id}", timeout=10)
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def hanging_worker(server: LiveServer, session: requests.Session, job_id: int) -> list[int]:
    """Wait until the test-hang job's worker and children run; [worker, *children]."""
    job = wait_for(lambda: (j := job_json(server, session, job_id))["message"] and j)
    pid = table.get_job(Workspace(server.workspace).db, job_id).pid
    assert pid is not None and job["state"] == "running"
    return [pid, *child_pids(job["message"])]


def tensorboard_pids(workspace: Path) -> list[int]:
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "unem.jobs.tensorboard_main" in cmdline and str(workspace / "jobs") in cmdline:
            pids.append(process.pid)
    return pids


def test_a_killed_server_leaves_its_jobs_interrupted_and_no_worker_behind(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    server = start_server(workspace, "--plugin", str(TEST_PLUGIN))
    session = server.admin_session()
    submitted = session.post(f"{server.base}/api/jobs", timeout=10,
                             json={"kind": "test-hang", "options": {"children": 2}})  # fmt: skip
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    processes = hanging_worker(server, session, job_id)
    os.killpg(server.process.pid, signal.SIGKILL)  # the server and nothing else: workers have
    server.process.wait(timeout=10)  # sessions of their own
    assert all(running(pid) for pid in processes)  # orphans now, still running

    restarted = start_server(workspace, "--plugin", str(TEST_PLUGIN))
    try:
        session = restarted.admin_session()
        job = job_json(restarted, session, job_id)
        assert job["state"] == "interrupted" and job["can_resume"], job
        assert "Its worker was still running and has been stopped." in job["error"]
        assert group(processes[0]) == [] and not any(running(pid) for pid in processes)

        resumed = session.post(f"{restarted.base}/api/jobs/{job_id}/resume", json={}, timeout=10)
        assert resumed.json()["state"] in ("queued", "running")
        again = hanging_worker(restarted, session, job_id)
        board = session.get(f"{restarted.base}/tensorboard/data/runs", timeout=60)
        assert board.status_code == 200 and tensorboard_pids(workspace)
    finally:
        code = stop_server(restarted)  # Ctrl-C: stops workers and TensorBoard with it
    assert code == 0, "".join(restarted.output)
    assert not any(running(pid) for pid in again) and group(again[0]) == []
    assert tensorboard_pids(workspace) == []
    stopped = table.get_job(Workspace(workspace).db, job_id)
    assert (stopped.state, stopped.attempts) == ("interrupted", 2)
