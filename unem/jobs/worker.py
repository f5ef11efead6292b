"""A job's worker process: `python -m unem.jobs.worker JOB_ID --workspace W`.

It reads the job's row, finds its kind, validates the options and runs the kind's
function; reports go to stdout as JSON text sequences (`unem.jobs.protocol`), anything else
printed is the job's log. The exit code is 0 with a result, 1 when the function raised.
The worker never writes the job's state: the server's runner does, from what it reads here.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from unem.config import load_settings
from unem.errors import UnemError
from unem.jobs import table
from unem.jobs.context import JobContext, Reporter
from unem.jobs.kinds import discover_kinds
from unem.workspace import Workspace


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m unem.jobs.worker", description=__doc__)
    parser.add_argument("job_id", type=int)
    parser.add_argument("--workspace", type=Path, required=True)
    return parser.parse_args(argv)


def run_job(job_id: int, workspace: Path, reporter: Reporter) -> int:
    ws = Workspace(workspace)
    job = table.get_job(ws.db, job_id)
    settings = load_settings({"workspace": str(workspace)})
    registry = discover_kinds(settings.plugins)
    for broken in registry.broken:
        print(f"plugin {broken.source} is broken: {broken.error}", file=sys.stderr)
    kind = registry.get(job.kind)
    options = kind.validate(job.options)
    folder = table.job_folder(ws.root, job.id)
    context = JobContext(job.id, ws, folder, job.user, reporter, resume=job.attempts > 1)
    try:
        result = kind.run(context, options)
    finally:
        context.close()
    reporter.send({"report": "result", "result": result})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Reports own stdout; Python-level prints of the job go to stderr, i.e. into the log.
    reporter = Reporter(sys.stdout.fileno())
    sys.stdout = sys.stderr
    reporter.send({"report": "started", "pid": os.getpid()})
    try:
        return run_job(args.job_id, args.workspace, reporter)
    except UnemError as error:
        reporter.send({"report": "error", "message": error.message})
        return 1
    except Exception as error:
        traceback.print_exc()
        reporter.send({"report": "error", "message": f"{type(error).__name__}: {error}"})
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
