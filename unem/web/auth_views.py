"""Sessions, the launcher's admin token, the login page and role checks for views and sockets."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import (
    Flask,
    Response,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from unem import auth
from unem.config import is_loopback
from unem.errors import Forbidden
from unem.web.errors import error_response, is_api_path
from unem.web.state import app_state, workspace

PUBLIC_ENDPOINTS = {
    "static",
    "vendor.file",
    "auth.login",
    "auth.login_post",
    "api_health",
    "events_js",
}
# Methods a cross-site HTML form or a "simple" fetch can send. DELETE is absent on purpose:
# browsers always preflight it, and we never answer a preflight, so it is not forgeable.
MUTATING_METHODS = {"POST", "PUT", "PATCH"}
# Proxied data a page fetches (TensorBoard's): answered 401, not with the login page, like
# the API; but its requests are the proxied tool's own (form posts), not our JSON.
PROXIED_DATA_PREFIXES = ("/tensorboard/data/",)
ANONYMOUS = auth.User(id=0, name="anonymous", role="viewer")
View = TypeVar("View", bound=Callable[..., Any])


def current_user() -> auth.User | None:
    """The logged-in user of this request (or Socket.IO connection), if any."""
    if "user" in g:
        user: auth.User | None = g.user
        return user
    user_id = session.get("user_id")
    user = auth.get_user(workspace().db, user_id) if isinstance(user_id, int) else None
    settings = app_state().settings
    if user is None and settings.anonymous_role == "viewer" and is_loopback(settings.host):
        user = ANONYMOUS
    g.user = user
    return user


def log_in(user: auth.User) -> None:
    session.clear()
    session["user_id"] = user.id
    session.permanent = True
    g.user = user


def requires(action: str) -> Callable[[View], View]:
    """Refuse the view with 403 unless the user's role allows `action` (view/edit/admin)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None or not user.can(action):
                raise Forbidden(f"Your role may not do this (needs {action}).")
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def socket_user(action: str = "view") -> auth.User:
    """For Socket.IO connect handlers: the user, or refuse the connection."""
    from flask_socketio import ConnectionRefusedError

    user = current_user()
    if user is None or not user.can(action):
        raise ConnectionRefusedError("unauthorized")
    return user


def token_login() -> Response | None:
    """Log in as admin with the launcher's token, then drop the token from the address bar."""
    token = request.args.get("token")
    if token is None:
        return None
    # compared as bytes: compare_digest refuses non-ASCII str, and a visitor may send anything
    if not hmac.compare_digest(token.encode(), app_state().admin_token.encode()):
        return None
    log_in(auth.ensure_admin(workspace().db))
    rest = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
    target = safe_next(request.path)
    return redirect(target + ("?" + rest if rest else ""))  # type: ignore[return-value]


def guard() -> Any:
    """Run before every request: token login, then 401 / login redirect for strangers."""
    response = token_login()
    if response is not None:
        return response
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    is_api = is_api_path(request.path)
    if current_user() is None:
        if is_api or request.path.startswith(PROXIED_DATA_PREFIXES):
            return error_response("Log in first.", 401)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if is_api and request.method in MUTATING_METHODS and not request.is_json:
        # A JSON body cannot be sent cross-site without a CORS preflight, which we never
        # grant, so this also stops cross-site request forgery.
        return error_response("Send a JSON body (Content-Type: application/json).", 415)
    return None


def safe_next(target: str | None) -> str:
    """Only redirect to paths of this server after login (never to another site)."""
    if not target or not target.startswith("/"):
        return "/"
    # Browsers read "/\\evil.com" and "/<TAB>/evil.com" as "//evil.com", another site.
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return "/"
    return target


def init_app(app: Flask) -> None:
    from flask import Blueprint

    app.before_request(guard)
    blueprint = Blueprint("auth", __name__)

    @blueprint.get("/login")
    def login() -> str:
        return render_template("login.html", next=safe_next(request.args.get("next")))

    @blueprint.post("/login")
    def login_post() -> Any:
        name = request.form.get("name", "")
        user = auth.authenticate(workspace().db, name, request.form.get("password", ""))
        if user is None:
            error = "Unknown user or wrong password."
            return render_template(
                "login.html", error=error, name=name, next=safe_next(request.form.get("next"))
            ), 401
        log_in(user)
        return redirect(safe_next(request.form.get("next")))

    @blueprint.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("auth.login"))

    @blueprint.get("/api/me")
    def me() -> Any:
        user = current_user()
        assert user is not None  # guard() answered 401 otherwise
        return {**user.to_json(), "permissions": sorted(auth.PERMISSIONS[user.role])}

    app.register_blueprint(blueprint)
