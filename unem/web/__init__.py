"""The web layer (composition root): `create_app` lists the subsystems, each has `init_app`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask

from unem import auth
from unem.config import Settings, load_settings, validate
from unem.volumes.datasets import list_datasets
from unem.workspace import Workspace


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app for `config` (Settings, or a mapping of setting overrides)."""
    import annotator3d
    import dojo
    from unem.web import (
        auth_views,
        datasets_api,
        errors,
        evaluation,
        ffn,
        filters,
        jobs,
        jobs_api,
        pages,
        tensorboard_proxy,
        trainer,
        users_api,
        vendor,
    )
    from unem.web.sockets import create_socketio
    from unem.web.state import AppState
    from unem.web.tasks import TaskRunner

    settings = validate(config) if isinstance(config, Settings) else load_settings(config)
    ws = Workspace(settings.workspace, settings.import_roots)
    ws.recover(d.id for d in list_datasets(ws))
    auth.ensure_admin(ws.db)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=ws.secret_key(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="unem_session",
        PERMANENT_SESSION_LIFETIME=timedelta(days=14),
        MAX_CONTENT_LENGTH=64 * 2**20,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # forms follow schemas' field order
    socketio = create_socketio(app)
    tasks = TaskRunner(app, socketio)
    app.extensions["unem"] = AppState(settings, ws, auth.new_token(), socketio, tasks)
    subsystems = (errors, auth_views, pages, datasets_api, users_api, vendor, dojo, annotator3d,
                  jobs, jobs_api, tensorboard_proxy, trainer, evaluation, filters, ffn)  # fmt: skip
    for subsystem in subsystems:
        subsystem.init_app(app)
    return app
