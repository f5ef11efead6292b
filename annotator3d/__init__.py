"""The 3D annotator: objects of a dataset as meshes, with names, colours and marker points.

An HTTP blueprint and a Socket.IO namespace, both thin adapters over `unem.annotations` and
`unem.meshes`; the three.js client lives in `static/`.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from annotator3d.live import Live
    from annotator3d.sockets import annotator_namespace
    from annotator3d.views import blueprint

    state = app.extensions["unem"]
    app.register_blueprint(blueprint)
    state.socketio.on_namespace(annotator_namespace())
    app.extensions["annotator3d"] = Live(app, state.socketio)
