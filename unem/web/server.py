"""`main.py serve`: pick a port, print the admin URL, open the browser, run until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import webbrowser
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from unem.config import Settings
from unem.web import create_app
from unem.web.state import AppState

log = logging.getLogger(__name__)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, wanted: int) -> int:
    """`wanted` if nobody listens there, else a free port the system picks."""
    if wanted and port_is_free(host, wanted):
        return wanted
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def admin_url(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/?token={token}"


class NoDelayHandler(WSGIRequestHandler):
    """Send small messages at once: without TCP_NODELAY an edit's acknowledgement waits
    ~40 ms on the client's delayed ACK of the broadcast sent just before it (Nagle)."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def quiet_werkzeug(level: str) -> None:
    """Werkzeug logs every request and warns about production use; keep the console for us."""
    if level != "debug":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        import flask.cli

        flask.cli.show_server_banner = lambda *args, **kwargs: None


def serve(settings: Settings) -> int:
    logging.getLogger().setLevel(settings.log_level.upper())
    quiet_werkzeug(settings.log_level)
    app = create_app(settings)
    state: AppState = app.extensions["unem"]
    port = free_port(settings.host, settings.port)
    url = admin_url(settings.host, port, state.admin_token)
    print(
        f"UNEM {settings.workspace} is served at\n\n    {url}\n\n"
        "Open that link to log in as admin. Press Ctrl-C to stop.",
        flush=True,
    )
    if settings.open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        state.socketio.run(
            app,
            host=settings.host,
            port=port,
            allow_unsafe_werkzeug=True,
            request_handler=NoDelayHandler,
            use_reloader=False,
            log_output=settings.log_level == "debug",
        )
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping UNEM…", file=sys.stderr, flush=True)
        state.shutdown()
    return 0


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
