"""Every path a request names stays inside the workspace or the import roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import DATA, ISBI_IMAGES
from tests.web.conftest import import_small, wait_for_task, workspace_entries, write_stack


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A readable, importable folder of slices outside the workspace and the import roots."""
    folder = tmp_path / "outside"
    write_stack(folder / "stack.npy")
    return folder


def escapes(app: Flask, outside: Path) -> list[str]:
    """Paths naming `outside` (or /etc) by `..`, absolutely, or through a symbolic link."""
    root = app.extensions["unem"].workspace.root
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "volumes" / "deep-link").symlink_to(outside / "stack.npy")
    dots = os.path.relpath(outside, root)
    assert dots.startswith("..")
    return [
        dots,
        f"{dots}/stack.npy",
        str(outside),
        str(outside / "stack.npy"),
        "/etc",
        f"{DATA}/{'../' * len(DATA.parts)}{str(outside).lstrip('/')}",  # out of an import root
        "link",
        "link/stack.npy",
        str(root / "link"),
        "volumes/deep-link",
        "~/",
        "volumes/../../" + outside.name,
        "a\0b",
    ]


def test_imports_from_outside_are_refused(
    app: Flask, admin_client: FlaskClient, outside: Path
) -> None:
    paths = escapes(app, outside)
    before = workspace_entries(app)
    for path in paths:
        for layers in (
            {"image": {"path": path}},
            {"image": {"path": str(ISBI_IMAGES)}, "groundtruth": {"path": path}},
        ):
            response = admin_client.post("/api/datasets", json={"name": "x", "layers": layers})
            assert response.status_code == 403, (path, response.get_json())
            assert (
                "outside" in response.get_json()["error"]
                or "usable" in response.get_json()["error"]
            )
    assert workspace_entries(app) == before


def test_browsing_outside_is_refused(app: Flask, admin_client: FlaskClient, outside: Path) -> None:
    for path in escapes(app, outside):
        response = admin_client.get("/api/fs", query_string={"path": path})
        assert response.status_code == 403, (path, response.get_json())


def test_browsing_lists_only_what_may_be_imported(
    app: Flask, admin_client: FlaskClient, outside: Path
) -> None:
    root = app.extensions["unem"].workspace.root
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "inside").symlink_to(root / "volumes", target_is_directory=True)
    listing = admin_client.get("/api/fs", query_string={"path": str(root)}).get_json()
    names = {entry["name"] for entry in listing["entries"]}
    assert "inside" in names and "volumes" in names and "link" not in names
    assert listing["parent"] is None  # the workspace's parent is not browsable
    top = admin_client.get("/api/fs").get_json()
    assert [e["path"] for e in top["entries"]] == [str(root), str(DATA)]
    images = admin_client.get("/api/fs", query_string={"path": str(ISBI_IMAGES)}).get_json()
    assert images["parent"] == str(ISBI_IMAGES.parent)
    assert len(images["entries"]) == 30 and all(e["stack"] for e in images["entries"])


def test_a_link_to_an_allowed_folder_is_followed(app: Flask, admin_client: FlaskClient) -> None:
    root = app.extensions["unem"].workspace.root
    (root / "isbi").symlink_to(ISBI_IMAGES, target_is_directory=True)
    response = admin_client.post(
        "/api/datasets", json={"name": "linked", "layers": {"image": {"path": "isbi"}}}
    )
    assert response.status_code == 202
    assert wait_for_task(admin_client, response.get_json()["id"])["state"] == "done"


def test_exports_cannot_be_escaped(app: Flask, admin_client: FlaskClient, outside: Path) -> None:
    ws = app.extensions["unem"].workspace
    secret = ws.secret_key()
    (ws.exports / "out.npy").symlink_to(outside / "stack.npy")
    (ws.exports / "key").symlink_to(ws.root / "secret.key")
    (ws.exports / ".partial-x.npy").write_bytes(b"half written")
    responses = {
        name: admin_client.get(f"/api/exports/{name}")
        for name in (
            "..",
            "...",
            "%2E%2E",
            "..%2Fsecret.key",
            "..%2F..%2Fetc%2Fpasswd",
            "%2Fetc%2Fpasswd",
            "out.npy",
            "key",
            ".partial-x.npy",
            "missing.tif",
        )
    }
    for name, response in responses.items():
        assert response.status_code in (403, 404), name
        assert secret.hex().encode() not in response.data
    assert responses["out.npy"].status_code == 403
    assert admin_client.get("/api/exports/../secret.key").status_code == 404


def test_exports_download_and_never_overwrite_each_other(
    app: Flask, admin_client: FlaskClient
) -> None:
    dataset = import_small(app)
    request = {"layer": "image", "format": "png"}
    response = admin_client.post(f"/api/datasets/{dataset}/export", json=request)
    result = wait_for_task(admin_client, response.get_json()["id"])["result"]
    download = admin_client.get(result["download"])
    assert download.status_code == 200 and download.data[:2] == b"PK"  # a folder comes zipped
    again = admin_client.post(f"/api/datasets/{dataset}/export", json=request)
    second = wait_for_task(admin_client, again.get_json()["id"])["result"]
    assert second["name"] != result["name"]  # a new export never overwrites an earlier one
    listed = admin_client.get("/api/exports").get_json()["exports"]
    assert sorted(e["name"] for e in listed) == sorted([result["name"], second["name"]])
    assert admin_client.get(result["download"]).data == download.data
