"""/api/users: the admin creates accounts, changes roles and passwords, deletes accounts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask

from unem import auth
from unem.web.auth_views import requires
from unem.web.datasets_api import body
from unem.web.state import workspace

blueprint = Blueprint("users", __name__, url_prefix="/api")


@blueprint.get("/users")
@requires("admin")
def list_all() -> Any:
    return {"users": [u.to_json() for u in auth.list_users(workspace().db)], "roles": auth.ROLES}


@blueprint.post("/users")
@requires("admin")
def create() -> Any:
    data = body()
    user = auth.create_user(
        workspace().db,
        str(data.get("name", "")),
        str(data.get("role", "proofreader")),
        str(data.get("password", "")),
    )
    return user.to_json(), 201


@blueprint.patch("/users/<name>")
@requires("admin")
def update(name: str) -> Any:
    data = body()
    role, password = data.get("role"), data.get("password")
    user = auth.update_user(
        workspace().db,
        name,
        role=None if role is None else str(role),
        password=None if password is None else str(password),
    )
    return user.to_json()


@blueprint.delete("/users/<name>")
@requires("admin")
def delete(name: str) -> Any:
    auth.delete_user(workspace().db, name)
    return {"deleted": name}


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
