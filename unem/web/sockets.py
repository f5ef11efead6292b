"""Socket.IO: one server per app, every connection authenticated by the session cookie."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_socketio import Namespace, SocketIO, join_room

from unem.web.auth_views import socket_user
from unem.web.events import NAMESPACES


class AuthenticatedNamespace(Namespace):  # type: ignore[misc]  # flask_socketio is untyped
    """A namespace that refuses connections without a logged-in user allowed to view."""

    def on_connect(self, auth: Any = None) -> None:
        socket_user("view")


class DatasetsNamespace(AuthenticatedNamespace):
    def on_connect(self, auth: Any = None) -> None:
        user = socket_user("view")
        join_room(f"user:{user.name}")


def create_socketio(app: Flask) -> SocketIO:
    socketio = SocketIO(app, async_mode="threading", manage_session=False)
    socketio.on_namespace(AuthenticatedNamespace("/"))
    socketio.on_namespace(DatasetsNamespace(NAMESPACES["DATASETS"]))
    return socketio
