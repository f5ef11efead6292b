"""A first end-to-end check of the app factory and the admin token."""

from __future__ import annotations


def test_health_is_anonymous(client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_token_logs_in_as_admin(admin_client) -> None:
    me = admin_client.get("/api/me").get_json()
    assert me["name"] == "admin" and me["role"] == "admin"
