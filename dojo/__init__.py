"""Dojo, the multi-user proofreader: an HTTP blueprint and a Socket.IO namespace, both thin
adapters over `unem.proofread`; the browser client lives in `static/`."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from dojo.sockets import dojo_namespace
    from dojo.views import blueprint

    app.register_blueprint(blueprint)
    app.extensions["unem"].socketio.on_namespace(dojo_namespace())
