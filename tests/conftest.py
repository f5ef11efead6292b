"""Shared fixtures: temporary workspaces, a Flask app per test, a real server subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("UNEM_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()
ISBI_IMAGES = DATA / "isbi2012_drosophila_vnc" / "train" / "image"
MEDULLA = DATA / "flyem_fib_medulla_neuroproof_sample2"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"the shared test data is missing at {DATA} (set UNEM_TEST_DATA)")
    return DATA


@pytest.fixture
def workspace(tmp_path: Path):  # type: ignore[no-untyped-def]
    from unem.workspace import Workspace

    return Workspace(tmp_path / "ws", import_roots=[DATA])


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    from unem.web import create_app

    app = create_app({"workspace": str(tmp_path / "ws"), "import_roots": [str(DATA)]})
    app.config["TESTING"] = True
    yield app
    app.extensions["unem"].shutdown()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """An anonymous test client."""
    return app.test_client()


@pytest.fixture
def admin_client(app):  # type: ignore[no-untyped-def]
    """A test client logged in with the launcher's admin token."""
    client = app.test_client()
    response = client.get(f"/?token={app.extensions['unem'].admin_token}")
    assert response.status_code == 302
    return client


def login(app, name: str, password: str, role: str):  # type: ignore[no-untyped-def]
    """Create an account with `role` and return a test client logged in as it."""
    from unem import auth

    auth.create_user(app.extensions["unem"].workspace.db, name, role, password)
    client = app.test_client()
    response = client.post("/login", data={"name": name, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[str]
    base: str
    token: str
    workspace: Path
    output: list[str]

    @property
    def admin_url(self) -> str:
        return f"{self.base}/?token={self.token}"

    def admin_session(self) -> requests.Session:
        session = requests.Session()
        session.get(self.admin_url, timeout=10).raise_for_status()
        return session


def start_server(workspace: Path, *extra: str, env: dict[str, str] | None = None) -> LiveServer:
    """Run `main.py serve` as a subprocess and wait until /api/health answers."""
    port = free_port()
    command = [sys.executable, str(ROOT / "main.py"), "serve", "--workspace", str(workspace),
               "--no-browser", "--port", str(port), "--import-root", str(DATA), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=ROOT, env={**os.environ, **(env or {})},
                               start_new_session=True)
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 60
    token = None
    while token is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise RuntimeError("server exited:\n" + "".join(output))
        output.append(line)
        match = re.search(r"(http://\S+):(\d+)/\?token=(\S+)", line)
        if match:
            token = match.group(3)
    assert token is not None, "".join(output)
    base = f"http://127.0.0.1:{port}"
    wait_for_health(base, deadline)
    return LiveServer(process, base, token, workspace, output)


def wait_for_health(base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/api/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise TimeoutError(f"{base}/api/health never answered")


def stop_server(server: LiveServer) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    return int(server.process.returncode)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "ws")
    yield server
    stop_server(server)


def chromium_path() -> str | None:
    candidates = (os.environ.get("UNEM_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser")
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return None


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """Debian's Chromium driven by Playwright (Playwright never downloads a browser here)."""
    executable = chromium_path()
    if executable is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()
