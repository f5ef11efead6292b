"""What a job's function gets in the worker: its folder, the workspace, and a reporter."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unem.jobs import protocol
from unem.jobs.scalars import ScalarWriter
from unem.workspace import Workspace


class Reporter:
    """Writes reports to a file descriptor, each in one `write` so lines never interleave."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, report: dict[str, Any]) -> None:
        data = protocol.encode(report)
        while data:
            data = data[os.write(self.fd, data) :]


class JobContext:
    """Passed to a kind's function with its options.

    `progress(step, total, message, metrics)` is a `unem.progress.Progress`; its metrics
    are shown live on the jobs page and written as TensorBoard scalars at `step` (into
    `tensorboard_dir`, where the kind may also write its own events). `resume` is true when
    this run continues an interrupted one: a resumable kind then starts from its last
    checkpoint in `checkpoint_dir`.
    """

    def __init__(
        self,
        job_id: int,
        workspace: Workspace,
        folder: Path,
        user: str,
        reporter: Reporter,
        resume: bool = False,
    ) -> None:
        self.job_id = job_id
        self.workspace = workspace
        self.folder = folder
        self.user = user
        self.resume = resume
        self.reporter = reporter
        self._scalars: ScalarWriter | None = None

    @property
    def tensorboard_dir(self) -> Path:
        return self.folder / "tensorboard"

    @property
    def checkpoint_dir(self) -> Path:
        path = self.folder / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def progress(
        self, step: int, total: int, message: str = "", metrics: Mapping[str, float] | None = None
    ) -> None:
        clean = protocol.clean_metrics(dict(metrics or {}))
        if clean:
            self.scalars(step, clean)
        self.reporter.send(
            {
                "report": "progress",
                "step": step,
                "total": total,
                "message": message,
                "metrics": clean,
                "time": time.time(),
            }
        )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Write TensorBoard scalars only (not shown on the jobs page)."""
        if self._scalars is None:
            self._scalars = ScalarWriter(self.tensorboard_dir)
        self._scalars.add(step, values)

    def log(self, message: str) -> None:
        """A line of the job's log."""
        print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._scalars is not None:
            self._scalars.close()
