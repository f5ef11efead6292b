"""The `evaluate` job through the real job manager, its report as JSON and CSV, and who may
run, read and delete evaluations."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.test_train2d_jobs import finished, submit
from unem.demo import create_demo_dataset

pytestmark = pytest.mark.timeout(300)
SHAPE = (5, 96, 96)


@pytest.fixture
def demo(app: Flask) -> str:
    """The demo volume: a segmentation with three split and three merge errors, and its truth."""
    return create_demo_dataset(app.extensions["unem"].workspace, shape=SHAPE).id


def evaluate(client: FlaskClient, options: dict[str, Any]) -> dict[str, Any]:
    job = submit(client, "evaluate", options)
    done = finished(client, job["id"], timeout=200)
    assert done["state"] == "done", done["log_tail"]
    return done


def test_an_evaluate_job_makes_a_report_to_read_and_download(
    app: Flask, admin_client: FlaskClient, viewer_client: FlaskClient, demo: str
) -> None:
    done = evaluate(admin_client, {"dataset": demo, "slices": "1-3"})
    assert done["title"] == f"Evaluate {demo}/segmentation against groundtruth"
    report_id = done["result"]["report"]

    report = viewer_client.get(f"/api/evaluations/{report_id}").get_json()
    assert report["job_id"] == done["id"] and report["user"] == "admin"
    assert report["mode"] == "instance" and report["per_slice"]["z"] == [1, 2, 3]
    assert report["scores"] == done["result"]["scores"]
    assert 0 < report["scores"]["adapted_rand_error"] < 1 and report["scores"]["vi_split"] > 0
    assert report["explanations"]["vi_merge"].startswith("Variation of information, merge")
    split = report["offenders"]["most_split"][0]
    assert len(split["location"]) == 3 and split["partners"] >= 2
    assert report["csv_url"] == f"/api/evaluations/{report_id}.csv"

    listed = viewer_client.get("/api/evaluations").get_json()["reports"]
    assert [r["id"] for r in listed] == [report_id] and "per_slice" not in listed[0]
    assert viewer_client.get("/api/evaluations", query_string={"dataset": "other"}).get_json() == {
        "reports": []
    }

    response = viewer_client.get(report["csv_url"])
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f"evaluation-{report_id}.csv" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["z", "rand_split", "rand_merge"] and rows[1][0] == "all"
    assert [row[0] for row in rows[2:]] == ["1", "2", "3"]
    assert float(rows[1][1]) == report["scores"]["rand_split"]


def test_semantic_evaluation_and_refusals_before_a_worker_starts(
    admin_client: FlaskClient, demo: str
) -> None:
    done = evaluate(admin_client, {"dataset": demo, "segmentation": "segmentation",
                                   "mode": "semantic"})  # fmt: skip
    report = admin_client.get(f"/api/evaluations/{done['result']['report']}").get_json()
    assert report["scores"]["dice"] == 1.0  # both label every voxel: the masks are equal
    assert report["offenders"] is None

    bad = [
        ({"dataset": "nowhere"}, "No dataset"),
        ({"dataset": demo, "groundtruth": "image"}, "must be a label layer"),
        ({"dataset": demo, "slices": "0-99"}, "outside the volume"),
        ({"dataset": demo, "box": [0, 0, 0, 5, 96]}, "box"),
        ({"dataset": demo, "mode": "panoptic"}, "mode"),
    ]
    for options, message in bad:
        response = admin_client.post("/api/jobs", json={"kind": "evaluate", "options": options})
        assert response.status_code == 400, options
        assert message in response.get_json()["error"], response.get_json()
    assert admin_client.get("/api/jobs").get_json()["jobs"][0]["id"] == done["id"]


def test_roles(
    app: Flask,
    admin_client: FlaskClient,
    viewer_client: FlaskClient,
    proofreader_client: FlaskClient,
    client: FlaskClient,
    demo: str,
) -> None:
    from unem.evaluation_reports import run_evaluation

    options = {"dataset": demo, "segmentation": "segmentation", "groundtruth": "groundtruth"}
    report = run_evaluation(app.extensions["unem"].workspace, options, "admin")
    url = f"/api/evaluations/{report['id']}"
    for anonymous in (client.get("/api/evaluations"), client.get(url), client.get(f"{url}.csv")):
        assert anonymous.status_code == 401
    for reader in (viewer_client, proofreader_client):
        assert reader.get(url).status_code == 200 and reader.get(f"{url}.csv").status_code == 200
        refused = reader.post("/api/jobs", json={"kind": "evaluate", "options": options})
        assert refused.status_code == 403
        assert reader.delete(url).status_code == 403
    assert viewer_client.get("/evaluation").status_code == 200
    page = viewer_client.get("/evaluation").get_data(as_text=True)
    assert 'id="read-only-note"' in page and 'href="/evaluation"' in page
    assert admin_client.delete(url).get_json() == {"deleted": report["id"]}
    assert admin_client.get(url).status_code == 404
    assert admin_client.get(f"{url}.csv").status_code == 404
