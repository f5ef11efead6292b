"""Front-end packages, served from `node_modules/` (installed by npm from the lockfile).

Only the files listed here are reachable, so nothing else under node_modules is exposed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, send_file

VENDOR_FILES = {
    "socket.io.esm.min.js": "socket.io-client/dist/socket.io.esm.min.js",
    # three.js for the 3D annotator; the controls import "three", mapped by the page's importmap
    "three.module.js": "three/build/three.module.js",
    "three.core.js": "three/build/three.core.js",
    "OrbitControls.js": "three/examples/jsm/controls/OrbitControls.js",
    "TrackballControls.js": "three/examples/jsm/controls/TrackballControls.js",
}


def node_modules() -> Path:
    """Where npm put the packages: beside the source tree, or inside a PyInstaller bundle."""
    if "UNEM_NODE_MODULES" in os.environ:
        return Path(os.environ["UNEM_NODE_MODULES"])
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        return Path(bundle) / "node_modules"
    return Path(__file__).resolve().parents[2] / "node_modules"


def missing_files() -> list[str]:
    return [path for path in VENDOR_FILES.values() if not (node_modules() / path).is_file()]


def init_app(app: Flask) -> None:
    blueprint = Blueprint("vendor", __name__)

    @blueprint.get("/vendor/<name>")
    def file(name: str) -> Response:
        if name not in VENDOR_FILES:
            abort(404)
        path = node_modules() / VENDOR_FILES[name]
        if not path.is_file():
            abort(404, f"{VENDOR_FILES[name]} is missing: run `python3 bootstrap.py run` once.")
        return send_file(path, max_age=3600)

    app.register_blueprint(blueprint)
