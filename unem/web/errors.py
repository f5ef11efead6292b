"""JSON errors for the API: `{"error": "...", "detail": ...}` with the right status code."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from unem.errors import UnemError

log = logging.getLogger(__name__)


def error_response(message: str, status: int, detail: object = None) -> tuple[Response, int]:
    return jsonify({"error": message, "detail": detail}), status


def is_api_path(path: str) -> bool:
    """JSON API paths: `/api/...` and each tool's `/<tool>/api/...` (e.g. `/dojo/api/...`)."""
    return "api" in path.split("/")[1:3]


def wants_json() -> bool:
    return is_api_path(request.path) or request.is_json


def init_app(app: Flask) -> None:
    @app.errorhandler(UnemError)
    def unem_error(error: UnemError) -> tuple[Response, int]:
        return error_response(error.message, error.status, error.detail)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> HTTPException | tuple[Response, int]:
        if not wants_json():
            return error
        return error_response(error.description or error.name, error.code or 500)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response("Internal error; the server log has the details.", 500)
