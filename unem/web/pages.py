"""HTML pages of the web skeleton: home (datasets) and user management."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template

from unem import __version__
from unem.web.auth_views import current_user, requires
from unem.web.events import events_module
from unem.web.vendor import missing_files

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
def home() -> str:
    return render_template(
        "home.html", user=current_user(), missing=missing_files(), version=__version__
    )


@blueprint.get("/users")
@requires("admin")
def users() -> str:
    return render_template("users.html", user=current_user(), version=__version__)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)

    @app.get("/api/health")
    def api_health() -> Any:
        return {"status": "ok", "version": __version__}

    @app.get("/events.js")
    def events_js() -> Response:
        return Response(events_module(), mimetype="text/javascript")
