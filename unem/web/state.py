"""What the app holds for its lifetime: settings, workspace, admin token, tasks, shutdown hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app
from flask_socketio import SocketIO

from unem.config import Settings
from unem.workspace import Workspace

if TYPE_CHECKING:
    from unem.web.tasks import TaskRunner


@dataclass
class AppState:
    settings: Settings
    workspace: Workspace
    admin_token: str
    socketio: SocketIO
    tasks: TaskRunner
    shutdown_hooks: list[Callable[[], None]] = field(default_factory=list)

    def shutdown(self) -> None:
        """Stop what the app started (child processes, threads), newest first."""
        for hook in reversed(self.shutdown_hooks):
            hook()
        self.shutdown_hooks.clear()


def app_state() -> AppState:
    state: AppState = current_app.extensions["unem"]
    return state


def workspace() -> Workspace:
    return app_state().workspace
