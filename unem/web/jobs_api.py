"""/api/jobs: list, show, submit, cancel, resume, logs, and the kinds with their schemas."""

from __future__ import annotations

from collections import deque
from typing import Any

from flask import Blueprint, Flask, Response, request

from unem.errors import BadInput, NotFound
from unem.jobs.table import STATES
from unem.web.auth_views import requires
from unem.web.datasets_api import body, user_name
from unem.web.jobs import job_json, job_runner

TAIL_LINES = 200

blueprint = Blueprint("jobs_api", __name__, url_prefix="/api/jobs")


def log_tail(job_id: int, lines: int) -> list[str]:
    path = job_runner().log_path(job_id)
    if not path.exists():
        return []
    with path.open(encoding="utf-8", errors="replace") as file:
        return [line.rstrip("\n") for line in deque(file, maxlen=lines)]


@blueprint.get("")
def list_all() -> Any:
    states = request.args.getlist("state")
    if set(states) - set(STATES):
        raise BadInput(f"state must be among {', '.join(STATES)}.")
    return {"jobs": [job_json(job) for job in job_runner().list(states)]}


@blueprint.get("/kinds")
def kinds() -> Any:
    return job_runner().kinds().to_json()


@blueprint.get("/<int:job_id>")
def show(job_id: int) -> Any:
    tail = request.args.get("tail", str(TAIL_LINES))
    lines = int(tail) if tail.isdigit() else TAIL_LINES
    return {**job_json(job_runner().get(job_id)), "log_tail": log_tail(job_id, lines)}


@blueprint.post("")
@requires("admin")
def submit() -> Any:
    data = body()
    options = data.get("options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise BadInput("options must be an object.")
    job = job_runner().submit(str(data.get("kind", "")), options, user_name())
    return job_json(job), 201


@blueprint.post("/<int:job_id>/cancel")
@requires("admin")
def cancel(job_id: int) -> Any:
    return job_json(job_runner().cancel(job_id))


@blueprint.post("/<int:job_id>/resume")
@requires("admin")
def resume(job_id: int) -> Any:
    return job_json(job_runner().resume(job_id))


@blueprint.get("/<int:job_id>/log")
def download_log(job_id: int) -> Any:
    path = job_runner().log_path(job_id)
    if not path.exists():
        raise NotFound(f"Job {job_id} has no log yet.")
    # Read at once, not streamed: the log of a running job grows while it is sent.
    return Response(
        path.read_bytes(),
        mimetype="text/plain",
        headers={
            "Content-Disposition": f'attachment; filename="job-{job_id}.log"',
            "Cache-Control": "no-store",
        },
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
