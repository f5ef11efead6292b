"""Who may reach what: 401 for strangers on every API route, the admin token, the login page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import DATA, login
from tests.web.conftest import PASSWORD, api_routes, fill_route

MUTATING = {"POST", "PUT", "PATCH"}


def test_dummy_arguments_fill_every_converter() -> None:
    assert fill_route("/api/a/<name>/<int:n>/<path:p>") == "/api/a/dummy/1/some/path"
    assert fill_route("/api/b/<string(length=2):x>") == "/api/b/dummy"


def test_the_route_list_is_complete(app: Flask) -> None:
    routes = {(method, url) for method, url, _ in api_routes(app)}
    # A guard that the enumeration below sees real routes, including ones with arguments.
    assert {
        ("GET", "/api/datasets"),
        ("POST", "/api/datasets"),
        ("GET", "/api/me"),
        ("DELETE", "/api/datasets/dummy"),
        ("PATCH", "/api/users/dummy"),
        ("GET", "/api/exports/dummy"),
    } <= routes


def test_every_api_route_refuses_strangers_with_401(app: Flask, client: FlaskClient) -> None:
    wrong = []
    for method, url, endpoint in api_routes(app):
        response = client.open(url, method=method, json={})
        body = response.get_json(silent=True) or {}
        if response.status_code != 401 or "error" not in body:
            wrong.append(f"{method} {url} ({endpoint}): {response.status_code} {body}")
    assert not wrong, "\n".join(wrong)


def test_a_wrong_token_is_no_login(app: Flask, client: FlaskClient) -> None:
    token = app.extensions["unem"].admin_token
    for wrong in ("nope", token[:-1], token + "x", "é" * 8, ""):
        response = client.get("/api/me", query_string={"token": wrong})
        assert response.status_code == 401, wrong
        assert client.get("/", query_string={"token": wrong}).status_code == 302
        assert client.get("/api/me").status_code == 401


def test_health_needs_no_login(client: FlaskClient) -> None:
    assert client.get("/api/health").status_code == 200


def test_the_token_logs_in_as_admin_and_leaves_the_address(app: Flask, client: FlaskClient) -> None:
    token = app.extensions["unem"].admin_token
    response = client.get(f"/?dataset=a&token={token}&z=3")
    assert response.status_code == 302
    assert response.headers["Location"] == "/?dataset=a&z=3"
    assert token not in response.headers["Location"]
    assert client.get("/api/me").get_json()["role"] == "admin"


def test_the_token_redirect_stays_on_this_site(app: Flask, client: FlaskClient) -> None:
    token = app.extensions["unem"].admin_token
    for path in ("//evil.example/", "/\\evil.example/"):
        # set PATH_INFO directly: the test client would read "//host/" as a host name
        response = client.get(
            "/", query_string={"token": token}, environ_overrides={"PATH_INFO": path}
        )
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//"), location
        assert "\\" not in location and not urlsplit(location).netloc, location


def test_pages_send_strangers_to_the_login_page(client: FlaskClient) -> None:
    response = client.get("/users?x=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert client.get("/login").status_code == 200


def test_a_wrong_password_is_refused_with_401(app: Flask, client: FlaskClient) -> None:
    login(app, "carla", PASSWORD, "proofreader")
    for name, password in (
        ("carla", "wrong password"),
        ("nobody", PASSWORD),
        ("admin", ""),
        ("admin", "anything at all"),
    ):
        response = client.post("/login", data={"name": name, "password": password})
        assert response.status_code == 401, name
        assert "wrong password" in response.get_data(as_text=True)
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/users?x=1", "/users?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("", "/"),
    ],
)
def test_login_redirects_only_to_local_paths(app: Flask, target: str, expected: str) -> None:
    from unem import auth

    auth.create_user(app.extensions["unem"].workspace.db, "nina", "viewer", PASSWORD)
    client = app.test_client()
    response = client.post("/login", data={"name": "nina", "password": PASSWORD, "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == expected
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert f'name="next" value="{expected}"' in page.replace("&#34;", '"')


def test_logout_ends_the_session(app: Flask) -> None:
    client = login(app, "otto", PASSWORD, "proofreader")
    assert client.get("/api/me").get_json()["name"] == "otto"
    assert client.post("/logout").status_code == 302
    assert client.get("/api/me").status_code == 401


def test_a_deleted_user_is_logged_out(app: Flask, admin_client: FlaskClient) -> None:
    client = login(app, "dora", PASSWORD, "proofreader")
    assert admin_client.delete("/api/users/dora").status_code == 200
    assert client.get("/api/me").status_code == 401


def test_a_new_role_applies_to_open_sessions(app: Flask, admin_client: FlaskClient) -> None:
    client = login(app, "rita", PASSWORD, "admin")
    assert client.get("/api/users").status_code == 200
    admin_client.patch("/api/users/rita", json={"role": "viewer"})
    assert client.get("/api/users").status_code == 403


def test_mutating_api_requests_need_a_json_body(app: Flask, admin_client: FlaskClient) -> None:
    wrong = []
    for method, url, endpoint in api_routes(app, MUTATING):
        for kwargs in (
            {"data": {"name": "x"}},
            {"data": '{"name": "x"}', "content_type": "text/plain"},
        ):
            response = admin_client.open(url, method=method, **kwargs)
            if response.status_code != 415:
                wrong.append(f"{method} {url} ({endpoint}) {kwargs}: {response.status_code}")
    assert not wrong, "\n".join(wrong)
    # the forms above asked for a user and a dataset named x: neither exists
    assert [u["name"] for u in admin_client.get("/api/users").get_json()["users"]] == ["admin"]
    assert admin_client.get("/api/datasets").get_json()["datasets"] == []


def test_anonymous_viewers_may_look_on_loopback_only(tmp_path: Path) -> None:
    from unem.web import create_app

    app = create_app(
        {
            "workspace": str(tmp_path / "ws"),
            "import_roots": [str(DATA)],
            "anonymous_role": "viewer",
            "host": "127.0.0.1",
        }
    )
    try:
        client = app.test_client()
        assert client.get("/api/datasets").status_code == 200
        assert client.get("/api/me").get_json()["role"] == "viewer"
        body = {"name": "x", "layers": {"image": {"path": str(tmp_path)}}}
        assert client.post("/api/datasets", json=body).status_code == 403
        assert (
            client.post(
                "/api/users", json={"name": "x", "role": "admin", "password": PASSWORD}
            ).status_code
            == 403
        )
        assert client.delete("/api/users/admin").status_code == 403
        assert client.get("/api/users").status_code == 403
    finally:
        app.extensions["unem"].shutdown()


def test_anonymous_viewers_are_refused_on_other_hosts(tmp_path: Path) -> None:
    from unem.config import Settings
    from unem.errors import BadInput
    from unem.web import create_app

    for host in ("0.0.0.0", "::", "192.168.1.10", ""):
        with pytest.raises(BadInput, match="log in"):
            create_app(
                {"workspace": str(tmp_path / "ws"), "anonymous_role": "viewer", "host": host}
            )
        # settings built by hand skip load_settings; the app factory checks them again
        with pytest.raises(BadInput, match="log in"):
            create_app(Settings(workspace=tmp_path / "ws", anonymous_role="viewer", host=host))
