"""/tensorboard/: a reverse proxy to the TensorBoard child process, behind the same login.

Remote users reach TensorBoard through this server's port and session; TensorBoard itself
listens on loopback only. Requests are passed on with their method, query and end-to-end
headers (never the session cookie); responses are streamed back as they arrive.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, request

from unem.jobs.tensorboard import PATH_PREFIX, TensorBoard
from unem.web.auth_views import requires
from unem.web.errors import error_response
from unem.web.state import AppState

EXTENSION = "unem.tensorboard"
METHODS = ["GET", "POST", "HEAD"]
CHUNK = 64 * 1024
UPSTREAM_TIMEOUT = 120.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "cookie", "authorization", "content-length"}

blueprint = Blueprint("tensorboard", __name__)


def tensorboard() -> TensorBoard:
    board: TensorBoard = current_app.extensions[EXTENSION]
    return board


def end_to_end(headers: Any) -> list[tuple[str, str]]:
    """`headers` without the hop-by-hop ones, including those `Connection` names."""
    named = {
        token.strip().lower()
        for value in headers.get_all("Connection") or []
        for token in value.split(",")
    }
    return [(k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP | named]


def upstream_headers() -> dict[str, str]:
    headers = {k: v for k, v in end_to_end(request.headers) if k.lower() not in NOT_FORWARDED}
    headers["X-Forwarded-For"] = request.remote_addr or ""
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Proto"] = request.scheme
    return headers


def streamed(upstream: http.client.HTTPResponse, connection: Any) -> Iterator[bytes]:
    try:
        while chunk := upstream.read1(CHUNK):
            yield chunk
    finally:
        connection.close()


def forward(port: int) -> Any:
    """Send this request to TensorBoard on `port` and stream its answer back."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=UPSTREAM_TIMEOUT)
    path = request.full_path if request.query_string else request.path
    body = request.get_data() if request.method == "POST" else None
    try:
        connection.request(request.method, path, body=body, headers=upstream_headers())
        upstream = connection.getresponse()
    except OSError as error:
        connection.close()
        return error_response(f"TensorBoard did not answer: {error}", 502)
    headers = [(k, v) for k, v in end_to_end(upstream.headers) if k.lower() != "set-cookie"]
    return Response(
        streamed(upstream, connection),
        status=upstream.status,
        headers=headers,
        direct_passthrough=True,
    )


@blueprint.get(PATH_PREFIX)
def root() -> Any:
    return redirect(PATH_PREFIX + "/")


@blueprint.route(PATH_PREFIX + "/", defaults={"path": ""}, methods=METHODS)
@blueprint.route(PATH_PREFIX + "/<path:path>", methods=METHODS)
@requires("view")
def proxy(path: str) -> Any:
    return forward(tensorboard().port())


def init_app(app: Flask) -> None:
    state: AppState = app.extensions["unem"]
    ws = state.workspace
    board = TensorBoard(ws.root / "jobs", ws.root / "tmp" / "tensorboard.log")
    app.extensions[EXTENSION] = board
    state.shutdown_hooks.append(board.stop)
    app.register_blueprint(blueprint)
