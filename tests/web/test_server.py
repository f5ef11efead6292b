"""The server process: it stops cleanly on Ctrl-C and never imports TensorFlow or Keras."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import DATA, ROOT, start_server, stop_server
from tests.web.conftest import SocketClient


def test_ctrl_c_stops_the_server_with_exit_code_0(tmp_path: Path) -> None:
    server = start_server(tmp_path / "ws")
    try:
        session = server.admin_session()
        client = SocketClient()
        client.connect(
            server.base,
            namespaces=["/datasets"],
            transports=["websocket"],
            headers={"Cookie": f"unem_session={session.cookies['unem_session']}"},
        )
        assert client.connected
        started = time.monotonic()
        code = stop_server(server)  # SIGINT, as Ctrl-C in the terminal sends
        assert code == 0, "".join(server.output)
        assert time.monotonic() - started < 10
        rest = server.process.stdout.read() if server.process.stdout else ""
        assert "Stopping UNEM" in rest and "Traceback" not in rest, rest
        deadline = time.monotonic() + 10
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.connected  # the server closed the connection as it went
    finally:
        if server.process.poll() is None:
            server.process.kill()


# Runs in a fresh interpreter: the app serves a home page, the dataset list, a socket
# connection and an import, then reports the TensorFlow/Keras modules that got imported.
SERVER_WORK = """
import json, sys, tempfile, time
from unem.web import create_app
import unem.cli, unem.web.server

app = create_app({"workspace": tempfile.mkdtemp(), "import_roots": [sys.argv[1]]})
client = app.test_client()
statuses = [client.get("/?token=" + app.extensions["unem"].admin_token).status_code]
statuses += [client.get(path).status_code for path in ("/", "/api/datasets", "/events.js")]
sockets = app.extensions["socketio"].test_client(app, namespace="/datasets",
                                                 flask_test_client=client)
task = client.post("/api/datasets", json={"name": "isbi", "layers": {"image": {
    "path": sys.argv[1] + "/isbi2012_drosophila_vnc/train/image"}}}).get_json()
while client.get("/api/tasks").get_json()["tasks"][0]["state"] == "running":
    time.sleep(0.05)
state = client.get("/api/tasks").get_json()["tasks"][0]["state"]
statuses.append(client.get("/api/datasets/isbi/thumbnail").status_code)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "tf_keras"})
print(json.dumps({"statuses": statuses, "state": state, "socket": sockets.is_connected("/datasets"),
                  "heavy": heavy}))
app.extensions["unem"].shutdown()
"""


def test_the_server_process_never_imports_tensorflow() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SERVER_WORK, str(DATA)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [302, 200, 200, 200, 200]
    assert report["state"] == "done" and report["socket"]
    assert report["heavy"] == []
