"""/api/jobs, the jobs pages and the /jobs namespace, with real worker processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.jobs_support import TEST_PLUGIN
from tests.web.conftest import import_small
from unem.web.events import EVENTS, NAMESPACES

pytestmark = pytest.mark.timeout(60)
JOBS = NAMESPACES["JOBS"]


@pytest.fixture(autouse=True)
def test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app (and its workers) load the test-only kinds, as with `--plugin`."""
    monkeypatch.setenv("UNEM_PLUGINS", str(TEST_PLUGIN))


def finished(client: FlaskClient, job_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").get_json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.03)
    raise TimeoutError(f"job {job_id} still active")


def submit(client: FlaskClient, kind: str, **options: Any) -> dict[str, Any]:
    response = client.post("/api/jobs", json={"kind": kind, "options": options})
    assert response.status_code == 201, response.get_json()
    job: dict[str, Any] = response.get_json()
    return job


def test_admins_run_a_real_job_and_read_its_log(app: Flask, admin_client: FlaskClient) -> None:
    dataset = import_small(app)
    job = submit(admin_client, "gaussian", dataset=dataset, sigma=1.0)
    assert job["title"] == f"Gaussian σ=1/0 of {dataset}/image" and job["user"] == "admin"
    done = finished(admin_client, job["id"])
    assert done["state"] == "done", done
    assert done["result"] == {"dataset": dataset, "layer": "image-gaussian", "dtype": "uint8"}
    assert done["tensorboard_url"] == f"/tensorboard/#scalars&regexInput=%5E{job['id']}%2F"
    assert done["log_tail"][-1] == "--- done" and done["page_url"] == f"/jobs/{job['id']}"
    layers = admin_client.get(f"/api/datasets/{dataset}").get_json()["layers"]
    assert "image-gaussian" in [layer["name"] for layer in layers]
    log = admin_client.get(done["log_url"])
    assert log.status_code == 200 and log.mimetype == "text/plain"
    assert log.headers["Content-Disposition"] == f'attachment; filename="job-{job["id"]}.log"'
    assert log.get_data(as_text=True).splitlines() == done["log_tail"]
    listed = admin_client.get("/api/jobs?state=done").get_json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert admin_client.get("/api/jobs?state=nope").status_code == 400


def test_refusals_are_json_with_the_right_code(admin_client: FlaskClient) -> None:
    bad = admin_client.post("/api/jobs", json={"kind": "test-steps", "options": {"steps": "x"}})
    assert bad.status_code == 400 and bad.get_json()["detail"][0]["field"] == "steps"
    assert admin_client.post("/api/jobs", json={"kind": "nope"}).status_code == 400
    listed = {"kind": "test-steps", "options": []}
    assert admin_client.post("/api/jobs", json=listed).status_code == 400
    assert admin_client.get("/api/jobs/99").status_code == 404
    assert admin_client.get("/api/jobs/99/log").status_code == 404
    job = submit(admin_client, "test-crash", lines=3)
    failed = finished(admin_client, job["id"])
    assert failed["state"] == "failed" and failed["exit_code"] == 3
    assert failed["last_lines"][-1] == "output line 2"
    assert admin_client.post(f"/api/jobs/{job['id']}/cancel", json={}).status_code == 409
    assert admin_client.post(f"/api/jobs/{job['id']}/resume", json={}).status_code == 409
    assert admin_client.post(f"/api/jobs/{job['id']}/cancel").status_code == 415  # JSON only


def test_kinds_come_with_their_schemas(admin_client: FlaskClient) -> None:
    data = admin_client.get("/api/jobs/kinds").get_json()
    kinds = {kind["name"]: kind for kind in data["kinds"]}
    assert {"pyramid", "gaussian", "test-steps"} <= set(kinds) and data["broken"] == []
    sigma = kinds["gaussian"]["schema"]["properties"]["sigma"]
    assert (sigma["type"], sigma["default"], sigma["exclusiveMinimum"]) == ("number", 1.0, 0)
    assert kinds["test-steps"]["resumable"] and kinds["test-gpu"]["resource"] == "accelerator"


@pytest.fixture(params=["viewer", "proofreader"])
def non_admin(request: pytest.FixtureRequest) -> FlaskClient:
    client: FlaskClient = request.getfixturevalue(f"{request.param}_client")
    return client


def test_only_admins_submit_cancel_or_resume(
    admin_client: FlaskClient, non_admin: FlaskClient
) -> None:
    job = submit(admin_client, "test-steps", steps=600, delay=0.05)
    refused = [
        non_admin.post("/api/jobs", json={"kind": "test-steps", "options": {}}),
        non_admin.post(f"/api/jobs/{job['id']}/cancel", json={}),
        non_admin.post(f"/api/jobs/{job['id']}/resume", json={}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert [j["id"] for j in non_admin.get("/api/jobs").get_json()["jobs"]] == [job["id"]]
    assert non_admin.get(f"/api/jobs/{job['id']}").get_json()["state"] in ("queued", "running")
    assert non_admin.get("/api/jobs/kinds").status_code == 200
    page = non_admin.get("/jobs").get_data(as_text=True)
    assert 'id="jobs-table"' in page and 'id="submit-job"' not in page
    assert non_admin.get(f"/jobs/{job['id']}").status_code == 200
    cancelled = admin_client.post(f"/api/jobs/{job['id']}/cancel", json={}).get_json()
    assert cancelled["state"] == "cancelled" and cancelled["can_resume"]
    resumed = admin_client.post(f"/api/jobs/{job['id']}/resume", json={}).get_json()
    assert resumed["state"] in ("queued", "running")
    admin_client.post(f"/api/jobs/{job['id']}/cancel", json={})


def test_pages_link_jobs_and_tensorboard(client: FlaskClient, admin_client: FlaskClient) -> None:
    home = admin_client.get("/").get_data(as_text=True)
    assert 'href="/jobs"' in home and 'href="/tensorboard/"' in home and "jobs_summary.js" in home
    page = admin_client.get("/jobs").get_data(as_text=True)
    assert 'id="submit-job"' in page and 'data-admin="true"' in page
    assert admin_client.get("/jobs/12345").status_code == 404
    assert client.get("/jobs").status_code == 302  # strangers log in first
    events_js = admin_client.get("/events.js").get_data(as_text=True)
    assert '"JOBS": "/jobs"' in events_js and '"JOB_PROGRESS": "job:progress"' in events_js


@pytest.fixture
def listener(app: Flask, admin_client: FlaskClient) -> Iterator[Any]:
    sockets = app.extensions["socketio"].test_client(
        app, namespace=JOBS, flask_test_client=admin_client
    )
    yield sockets
    if sockets.is_connected(JOBS):
        sockets.disconnect(namespace=JOBS)


def test_the_jobs_namespace_relays_state_progress_and_log(
    admin_client: FlaskClient, listener: Any
) -> None:
    assert listener.is_connected(JOBS)
    job = submit(admin_client, "test-steps", steps=4, delay=0.06)
    assert finished(admin_client, job["id"])["state"] == "done"
    time.sleep(0.1)
    received = [(e["name"], e["args"][0]) for e in listener.get_received(JOBS)]
    updated = [p["state"] for name, p in received if name == EVENTS["JOB_UPDATED"]]
    assert updated[0] == "queued" and updated[-1] == "done" and "running" in updated
    progress = [p for name, p in received if name == EVENTS["JOB_PROGRESS"]]
    assert progress and progress[-1]["step"] == 4 and progress[-1]["metrics"]["loss"] == 0.25
    lines = [line for name, p in received if name == EVENTS["JOB_LOG"] for line in p["lines"]]
    assert "[2/4] step 2" in lines and lines[-1] == "--- done"
    done = [p for name, p in received if name == EVENTS["JOB_UPDATED"]][-1]
    assert done["log_url"] == f"/api/jobs/{job['id']}/log"
    assert listener.emit(EVENTS["JOBS_PING"], {"t": 1}, namespace=JOBS, callback=True) == {
        "ok": True, "echo": {"t": 1}
    }  # fmt: skip


def test_the_jobs_namespace_refuses_strangers(app: Flask, client: FlaskClient) -> None:
    sockets = app.extensions["socketio"].test_client(app, namespace=JOBS, flask_test_client=client)
    assert not sockets.is_connected(JOBS)
