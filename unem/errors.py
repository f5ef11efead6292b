"""Errors a user can act on: each carries a message meant to be shown as it is."""

from __future__ import annotations


class UnemError(Exception):
    """Base of the errors shown to a user; `status` is the HTTP code the web layer sends."""

    status = 400

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class BadInput(UnemError):
    """The input (a file, a parameter) cannot be used; nothing was changed."""


class NotFound(UnemError):
    status = 404


class Forbidden(UnemError):
    status = 403


class PathRefused(Forbidden):
    """A path points outside the workspace and the allowed import roots."""


class Conflict(UnemError):
    status = 409
