"""/tensorboard/: a real TensorBoard, started on first use, behind the server's login.

The run is written by a job's worker process (the test-steps kind reports a `loss` metric,
which the worker writes as TensorBoard scalars), never by this test process.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.jobs_support import TEST_PLUGIN, running, wait_for
from unem.web.tensorboard_proxy import upstream_headers

pytestmark = pytest.mark.timeout(90)
STEPS = 5


@pytest.fixture(autouse=True)
def test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNEM_PLUGINS", str(TEST_PLUGIN))


def run_job_with_scalars(client: FlaskClient) -> int:
    job = client.post("/api/jobs", json={"kind": "test-steps", "options": {"steps": STEPS}})
    job_id: int = job.get_json()["id"]
    wait_for(lambda: client.get(f"/api/jobs/{job_id}").get_json()["state"] == "done")
    return job_id


def get_json(client: FlaskClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.data[:200])
    return json.loads(response.data)


def test_strangers_get_401_for_data_and_the_login_page_for_pages(client: FlaskClient) -> None:
    data = client.get("/tensorboard/data/runs")
    assert data.status_code == 401 and data.get_json()["error"] == "Log in first."
    page = client.get("/tensorboard/")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/tensorboard/"
    assert client.post("/tensorboard/data/plugin/timeseries/timeSeries").status_code == 401


def test_scalars_of_a_job_are_served_through_the_proxy(
    app: Flask, admin_client: FlaskClient, viewer_client: FlaskClient
) -> None:
    job_id = run_job_with_scalars(admin_client)
    board = app.extensions["unem.tensorboard"]
    assert not board.running  # started on first use only
    run = f"{job_id}/tensorboard"
    wait_for(lambda: run in get_json(viewer_client, "/tensorboard/data/runs"), timeout=30)
    query = f"run={run}&tag=loss"
    scalars = get_json(viewer_client, f"/tensorboard/data/plugin/scalars/scalars?{query}")
    assert [(step, round(value, 6)) for _, step, value in scalars] == [
        (step, round(1 / step, 6)) for step in range(1, STEPS + 1)
    ]
    tags = get_json(viewer_client, "/tensorboard/data/plugin/scalars/tags")
    assert set(tags[run]) == {"loss", "sent"}
    # the time-series dashboard posts a form, not JSON: it must pass the server's guard
    form = {"requests": json.dumps([{"plugin": "scalars", "tag": "loss", "run": run}])}
    series = viewer_client.post("/tensorboard/data/plugin/timeseries/timeSeries", data=form,
                                headers={"X-XSRF-Protected": "1"})  # fmt: skip
    assert series.status_code == 200, series.data[:300]
    assert len(json.loads(series.data)[0]["runToSeries"][run]) == STEPS
    page = viewer_client.get("/tensorboard/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b"<tf-tensorboard" in page.data or b"tensorboard" in page.data.lower()
    assert "Connection" not in page.headers and "Transfer-Encoding" not in page.headers
    assert viewer_client.get("/tensorboard").headers["Location"] == "/tensorboard/"
    pid = board.process.pid
    app.extensions["unem"].shutdown()  # the server stops: TensorBoard goes with it
    assert not running(pid)


def test_only_end_to_end_headers_reach_tensorboard(app: Flask) -> None:
    headers = {
        "Cookie": "unem_session=secret",
        "Authorization": "Basic x",
        "Connection": "keep-alive, X-Private",
        "X-Private": "1",
        "Keep-Alive": "timeout=5",
        "Accept": "application/json",
        "X-XSRF-Protected": "1",
    }
    with app.test_request_context("/tensorboard/data/runs", headers=headers):
        sent = {name.lower(): value for name, value in upstream_headers().items()}
    assert sent["accept"] == "application/json" and sent["x-xsrf-protected"] == "1"
    assert sent["x-forwarded-host"] == "localhost"
    for name in ("cookie", "authorization", "connection", "x-private", "keep-alive", "host"):
        assert name not in sent
