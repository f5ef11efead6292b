"""Job kinds for tests and benchmarks only, loaded as a plugin (`--plugin`, UNEM_PLUGINS).

They make the runner's paths deterministic: steps at a known pace, a crash with a known
exit code and output, a worker whose children ignore SIGTERM. The real kinds (pyramid,
gaussian) are tested end to end too; these cover what a real kind should never do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from unem.jobs.context import JobContext
from unem.jobs.kinds import JobKind

SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


class StepsOptions(BaseModel):
    steps: int = Field(5, ge=0, le=100_000, description="Progress reports to send.")
    delay: float = Field(0.02, ge=0, le=10, description="Seconds between reports.")
    fail: bool = Field(False, description="Raise an error after the last step.")


def run_steps(context: JobContext, options: StepsOptions) -> dict[str, Any]:
    context.progress(0, options.steps, "starting", {"sent": time.monotonic()})
    for step in range(1, options.steps + 1):
        time.sleep(options.delay)
        metrics = {"loss": 1.0 / step, "sent": time.monotonic()}
        context.progress(step, options.steps, f"step {step}", metrics)
    if options.fail:
        raise ValueError("asked to fail")
    return {"steps": options.steps, "resumed": context.resume}


class CrashOptions(BaseModel):
    how: Literal["exit", "kill", "raise"] = "exit"
    exit_code: int = Field(3, ge=1, le=255)
    lines: int = Field(30, ge=0, le=10_000)


def run_crash(context: JobContext, options: CrashOptions) -> None:
    context.progress(1, 2, "about to crash")
    for line in range(options.lines):
        print(f"output line {line}", flush=True)
    if options.how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if options.how == "raise":
        raise RuntimeError("something broke")
    sys.stderr.flush()
    os._exit(options.exit_code)


class HangOptions(BaseModel):
    children: int = Field(1, ge=0, le=8, description="Children that ignore SIGTERM.")
    ignore_sigterm: bool = Field(True, description="The worker ignores SIGTERM too.")


def run_hang(context: JobContext, options: HangOptions) -> None:
    if options.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = [subprocess.Popen([sys.executable, "-c", SLEEPER]) for _ in range(options.children)]
    pids = " ".join(str(child.pid) for child in children)
    context.progress(0, 1, f"children {pids}".strip())
    time.sleep(600)


def register_job_kinds(register: Callable[[JobKind], None]) -> None:
    register(
        JobKind(
            "test-steps",
            "Test steps",
            StepsOptions,
            run_steps,
            resumable=True,
            describe=lambda o: f"{o.steps} test steps",
        )
    )
    register(JobKind("test-crash", "Test crash", CrashOptions, run_crash))
    register(JobKind("test-hang", "Test hang", HangOptions, run_hang, resumable=True))
    register(
        JobKind(
            "test-gpu", "Test accelerator steps", StepsOptions, run_steps, resource="accelerator"
        )
    )
