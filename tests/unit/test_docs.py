"""The README documents every setting, command, socket event and API route (datasette's habit)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT
from unem.cli import COMMANDS
from unem.config import SETTINGS, env_name
from unem.web.events import EVENTS, NAMESPACES

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", [f.name for f in SETTINGS])
def test_every_setting_is_documented(name: str) -> None:
    assert f"| {name} |" in README
    assert env_name(name) in README


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented(command: str) -> None:
    assert f"| `{command}" in README


@pytest.mark.parametrize("event", [*EVENTS.values(), *NAMESPACES.values()])
def test_every_socket_event_is_documented(event: str) -> None:
    assert f"`{event}`" in README


def test_every_api_route_is_documented(app) -> None:  # type: ignore[no-untyped-def]
    documented = re.sub(r"<[a-z_]+>", "<x>", README)  # the README names arguments freely
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            route = re.sub(r"<[^>]+>", "<x>", rule.rule)
            assert route in documented, f"{rule.rule} is not in the README"


def test_readme_names_both_commands() -> None:
    assert "python3 bootstrap.py run" in README
    assert "python3 bootstrap.py test" in README
