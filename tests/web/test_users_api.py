"""/api/users: accounts with hashed passwords, refused input, the admins that must remain."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.web.conftest import PASSWORD


def database_bytes(app: Flask) -> bytes:
    """The raw database files (main file and write-ahead log) as they are on disk."""
    root: Path = app.extensions["unem"].workspace.root
    return b"".join(p.read_bytes() for p in root.glob("unem.sqlite*"))


def test_a_new_account_has_only_a_password_hash(app: Flask, admin_client: FlaskClient) -> None:
    secret = "plain-text-secret-9f3a"
    response = admin_client.post(
        "/api/users", json={"name": "eve", "role": "viewer", "password": secret}
    )
    assert response.status_code == 201
    assert response.get_json() == {"id": response.get_json()["id"], "name": "eve", "role": "viewer"}
    root = app.extensions["unem"].workspace.root
    with sqlite3.connect(root / "unem.sqlite") as conn:
        rows = conn.execute("SELECT * FROM users WHERE name = 'eve'").fetchall()
    assert len(rows) == 1 and not any(secret in str(value) for value in rows[0])
    assert secret.encode() not in database_bytes(app)
    client = app.test_client()
    assert client.post("/login", data={"name": "eve", "password": secret}).status_code == 302
    assert client.get("/api/me").get_json()["role"] == "viewer"


def test_users_are_listed_with_the_roles(admin_client: FlaskClient) -> None:
    admin_client.post(
        "/api/users", json={"name": "bob", "role": "proofreader", "password": PASSWORD}
    )
    listing = admin_client.get("/api/users").get_json()
    assert [(u["name"], u["role"]) for u in listing["users"]] == [
        ("admin", "admin"),
        ("bob", "proofreader"),
    ]
    assert listing["roles"] == ["admin", "proofreader", "viewer"]
    assert all("password" not in key for u in listing["users"] for key in u)


def test_bad_accounts_are_refused(admin_client: FlaskClient) -> None:
    def create(**fields: str) -> tuple[int, str]:
        response = admin_client.post("/api/users", json=fields)
        return response.status_code, response.get_json().get("error", "")

    assert create(name="bob", role="viewer", password=PASSWORD)[0] == 201
    assert create(name="bob", role="viewer", password=PASSWORD) == (
        409,
        "A user named 'bob' already exists.",
    )
    status, error = create(name="short", role="viewer", password="1234567")
    assert (status, "at least 8 characters" in error) == (400, True)
    status, error = create(name="boss", role="superuser", password=PASSWORD)
    assert (status, "Unknown role" in error) == (400, True)
    assert create(name="a b/../c", role="viewer", password=PASSWORD)[0] == 400
    assert create(name="", role="viewer", password=PASSWORD)[0] == 400
    assert admin_client.post("/api/users", json=["not", "an", "object"]).status_code == 400
    names = [u["name"] for u in admin_client.get("/api/users").get_json()["users"]]
    assert names == ["admin", "bob"]


def test_role_and_password_change_together_or_not_at_all(
    app: Flask, admin_client: FlaskClient
) -> None:
    admin_client.post("/api/users", json={"name": "kim", "role": "viewer", "password": PASSWORD})
    response = admin_client.patch(
        "/api/users/kim", json={"role": "nobody", "password": "a new password"}
    )
    assert response.status_code == 400
    response = admin_client.patch(
        "/api/users/kim", json={"role": "proofreader", "password": "short"}
    )
    assert response.status_code == 400
    client = app.test_client()
    assert client.post("/login", data={"name": "kim", "password": PASSWORD}).status_code == 302
    assert client.get("/api/me").get_json()["role"] == "viewer"
    response = admin_client.patch(
        "/api/users/kim", json={"role": "proofreader", "password": "a new password"}
    )
    assert response.get_json()["role"] == "proofreader"
    client = app.test_client()
    assert client.post("/login", data={"name": "kim", "password": PASSWORD}).status_code == 401
    assert (
        client.post("/login", data={"name": "kim", "password": "a new password"}).status_code == 302
    )


def test_the_last_admin_stays(admin_client: FlaskClient) -> None:
    for request in ({"role": "viewer"}, {"role": "proofreader"}):
        response = admin_client.patch("/api/users/admin", json=request)
        assert response.status_code == 400, response.get_json()
    assert admin_client.delete("/api/users/admin").status_code == 400
    admin_client.post("/api/users", json={"name": "ada", "role": "admin", "password": PASSWORD})
    # with two admins, ada may step down, but the launcher's account still may not
    assert admin_client.patch("/api/users/ada", json={"role": "viewer"}).status_code == 200
    assert admin_client.patch("/api/users/admin", json={"role": "viewer"}).status_code == 400
    assert admin_client.get("/api/me").get_json()["role"] == "admin"
    assert admin_client.delete("/api/users/ada").status_code == 200
    assert admin_client.delete("/api/users/ada").status_code == 404
    assert admin_client.patch("/api/users/ghost", json={"role": "viewer"}).status_code == 404


def test_the_token_still_gives_admin_after_role_changes(
    app: Flask, admin_client: FlaskClient
) -> None:
    admin_client.post("/api/users", json={"name": "ada", "role": "admin", "password": PASSWORD})
    admin_client.patch("/api/users/admin", json={"role": "viewer"})
    client = app.test_client()
    client.get(f"/?token={app.extensions['unem'].admin_token}")
    assert client.get("/api/me").get_json()["role"] == "admin"
