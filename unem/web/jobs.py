"""Jobs in the server: the runner (started with the app, stopped with it), the `/jobs`
Socket.IO namespace its events go out on, and the jobs pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, render_template

from unem import __version__
from unem.jobs.runner import JobRunner
from unem.jobs.table import Job
from unem.jobs.tensorboard import run_url
from unem.web.auth_views import current_user
from unem.web.events import EVENTS, NAMESPACES
from unem.web.sockets import AuthenticatedNamespace
from unem.web.state import AppState

EXTENSION = "unem.jobs"
RELAYED = {"updated": "JOB_UPDATED", "progress": "JOB_PROGRESS", "log": "JOB_LOG"}

pages = Blueprint("jobs", __name__)


def job_runner() -> JobRunner:
    runner: JobRunner = current_app.extensions[EXTENSION]
    return runner


def job_json(job: Job | dict[str, Any]) -> dict[str, Any]:
    """A job for clients: the row, with the links to its log and TensorBoard run."""
    data = job.to_json() if isinstance(job, Job) else dict(job)
    data["log_url"] = f"/api/jobs/{data['id']}/log"
    data["tensorboard_url"] = run_url(data["id"])
    data["page_url"] = f"/jobs/{data['id']}"
    return data


class JobsNamespace(AuthenticatedNamespace):
    """Every logged-in user sees every job; the server only sends (and answers `ping`)."""

    def on_ping(self, data: Any = None) -> dict[str, Any]:
        return {"ok": True, "echo": data}


@pages.get("/jobs")
def jobs_page() -> str:
    return render_template("jobs.html", user=current_user(), version=__version__)


@pages.get("/jobs/<int:job_id>")
def job_page(job_id: int) -> str:
    job = job_runner().get(job_id)
    return render_template("job.html", user=current_user(), version=__version__, job=job)


def init_app(app: Flask) -> None:
    state: AppState = app.extensions["unem"]
    socketio = state.socketio

    def notify(event: str, payload: dict[str, Any]) -> None:
        data = job_json(payload) if event == "updated" else payload
        socketio.emit(EVENTS[RELAYED[event]], data, namespace=NAMESPACES["JOBS"])

    runner = JobRunner(state.workspace, notify, plugins=state.settings.plugins)
    app.extensions[EXTENSION] = runner
    socketio.on_namespace(JobsNamespace(NAMESPACES["JOBS"]))
    app.register_blueprint(pages)
    state.shutdown_hooks.append(runner.stop)
    runner.start()
