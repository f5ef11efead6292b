"""`main.py jobs list|show|cancel|log`, run in-process on a workspace no server serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.jobs_support import TEST_PLUGIN, group, running
from unem.cli import main
from unem.jobs import processes, table
from unem.workspace import Workspace


def run(capsys: pytest.CaptureFixture[str], ws: Workspace, *args: str) -> tuple[int, str, str]:
    code = main(["jobs", *args, "--workspace", str(ws.root)])
    out, err = capsys.readouterr()
    return code, out, err


def finished_job(ws: Workspace) -> int:
    job = table.create_job(ws.db, "pyramid", "Pyramid of a/image", {"dataset": "a"}, "cpu",
                           False, "alice")  # fmt: skip
    table.claim_job(ws.db, job.id)
    table.record_progress(ws.db, job.id, 4, 4, "rebuilding", {"slices_per_second": 9.5}, None)
    table.finish_job(ws.db, job.id, "failed", error="The worker exited with code 3.", exit_code=3,
                     last_lines=["boom"])  # fmt: skip
    log = ws.root / job.log_path
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(10)))
    return job.id


def test_list_show_and_log(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = finished_job(workspace)
    queued = table.create_job(workspace.db, "gaussian", "Gaussian", {}, "cpu", False, "bob").id
    code, out, _ = run(capsys, workspace)
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()] == [
        [str(queued), "queued", "gaussian"], [str(job_id), "failed", "pyramid"]
    ]  # fmt: skip
    code, out, _ = run(capsys, workspace, "list", "--state", "failed")
    assert code == 0 and len(out.splitlines()) == 1 and "4/4" in out and "alice" in out
    code, out, _ = run(capsys, workspace, "show", str(job_id))
    assert "exit_code    3" in out and "last line    boom" in out and "slices_per_second" in out
    code, out, _ = run(capsys, workspace, "log", str(job_id), "--tail", "2")
    assert out == "line 8\nline 9\n"
    code, _, err = run(capsys, workspace, "show", "99")
    assert code == 2 and "error: No job 99." in err


def test_cancel_a_queued_job_and_a_running_worker_without_server(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    queued = table.create_job(workspace.db, "test-hang", "t", {}, "cpu", True, "a")
    code, out, _ = run(capsys, workspace, "cancel", str(queued.id))
    assert (code, out) == (0, f"Job {queued.id} is cancelled\n")
    job = table.create_job(workspace.db, "test-hang", "t", {"ignore_sigterm": False}, "cpu",
                           True, "a")  # fmt: skip
    table.claim_job(workspace.db, job.id)
    env = {**os.environ, "UNEM_PLUGINS": str(TEST_PLUGIN)}
    worker = processes.start_process(processes.worker_command(job.id, workspace.root), env=env)
    ident = processes.ProcessId.of(worker.pid)
    assert ident is not None and worker.stdout is not None
    table.record_process(workspace.db, job.id, worker.pid, ident.started)
    while b"children" not in worker.stdout.readline():
        pass
    assert running(worker.pid)
    code, out, _ = run(capsys, workspace, "cancel", str(job.id))
    worker.wait(timeout=5)
    assert (code, out) == (0, f"Job {job.id} is cancelled\n")
    assert group(worker.pid) == []
    code, _, err = run(capsys, workspace, "cancel", str(job.id))
    assert code == 2 and "only queued or running jobs" in err


def test_the_bundle_flag_runs_only_known_modules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--run-module", "os"]) == 2
    assert "--run-module takes one of unem.jobs.worker" in capsys.readouterr().err


def test_log_of_a_job_without_log_prints_nothing(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = table.create_job(workspace.db, "pyramid", "p", {}, "cpu", False, "a")
    assert run(capsys, workspace, "log", str(job.id))[:2] == (0, "")
