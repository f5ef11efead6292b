"""What each role may do: only admins import, create the demo, delete and manage users."""

from __future__ import annotations

import importlib.util

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ISBI_IMAGES
from tests.web.conftest import PASSWORD, import_small, wait_for_task, workspace_entries

IMPORT = {"name": "isbi", "layers": {"image": {"path": str(ISBI_IMAGES)}}}
NEW_USER = {"name": "mallory", "role": "admin", "password": PASSWORD}


@pytest.fixture(params=["viewer", "proofreader"])
def non_admin(request: pytest.FixtureRequest) -> FlaskClient:
    client: FlaskClient = request.getfixturevalue(f"{request.param}_client")
    return client


def test_non_admins_may_not_change_datasets_or_users(app: Flask, non_admin: FlaskClient) -> None:
    dataset = import_small(app)
    before = workspace_entries(app)
    refused = [
        non_admin.post("/api/datasets", json=IMPORT),
        non_admin.post("/api/datasets/demo", json={}),
        non_admin.delete(f"/api/datasets/{dataset}"),
        non_admin.patch(f"/api/datasets/{dataset}", json={"name": "renamed"}),
        non_admin.get("/api/fs", query_string={"path": str(ISBI_IMAGES)}),
        non_admin.get("/api/users"),
        non_admin.post("/api/users", json=NEW_USER),
        non_admin.patch("/api/users/admin", json={"password": "taken over!"}),
        non_admin.delete("/api/users/vera"),
        non_admin.delete("/api/users/paul"),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all("role" in r.get_json()["error"] for r in refused)
    assert workspace_entries(app) == before
    assert non_admin.get(f"/api/datasets/{dataset}").get_json()["name"] == "small"
    assert non_admin.get("/api/me").status_code == 200


def test_every_role_may_look(
    app: Flask, viewer_client: FlaskClient, proofreader_client: FlaskClient
) -> None:
    dataset = import_small(app)
    for client in (viewer_client, proofreader_client):
        assert [d["id"] for d in client.get("/api/datasets").get_json()["datasets"]] == [dataset]
        assert client.get(f"/api/datasets/{dataset}/thumbnail").status_code == 200
        assert client.get("/api/tasks").status_code == 200
        assert client.get("/api/exports").status_code == 200


def test_proofreaders_may_export_and_viewers_may_not(
    app: Flask, viewer_client: FlaskClient, proofreader_client: FlaskClient
) -> None:
    dataset = import_small(app)
    request = {"layer": "image", "format": "npy"}
    assert viewer_client.post(f"/api/datasets/{dataset}/export", json=request).status_code == 403
    response = proofreader_client.post(f"/api/datasets/{dataset}/export", json=request)
    assert response.status_code == 202
    assert wait_for_task(proofreader_client, response.get_json()["id"])["state"] == "done"


def test_admins_may_import_delete_and_manage_users(app: Flask, admin_client: FlaskClient) -> None:
    response = admin_client.post("/api/datasets", json=IMPORT)
    assert response.status_code == 202
    task = wait_for_task(admin_client, response.get_json()["id"])
    assert task["state"] == "done", task
    dataset = task["result"]["id"]
    response = admin_client.patch(f"/api/datasets/{dataset}", json={"name": "ISBI 2012"})
    assert response.get_json()["name"] == "ISBI 2012"
    assert admin_client.delete(f"/api/datasets/{dataset}").status_code == 200
    assert admin_client.get("/api/datasets").get_json()["datasets"] == []
    assert not app.extensions["unem"].workspace.dataset_dir(dataset).exists()
    assert admin_client.post("/api/users", json=NEW_USER).status_code == 201
    assert admin_client.patch("/api/users/mallory", json={"role": "viewer"}).status_code == 200
    assert admin_client.delete("/api/users/mallory").status_code == 200
    assert admin_client.get("/api/fs").status_code == 200


@pytest.mark.skipif(
    importlib.util.find_spec("unem.demo") is None,
    reason="unem/demo.py is not written yet (another developer's room)",
)
def test_admins_may_create_the_demo(admin_client: FlaskClient) -> None:
    response = admin_client.post("/api/datasets/demo", json={})
    assert response.status_code == 202
    task = wait_for_task(admin_client, response.get_json()["id"], timeout=60)
    assert task["state"] == "done", task
    names = [d["name"] for d in admin_client.get("/api/datasets").get_json()["datasets"]]
    assert names == [task["result"]["name"]]
