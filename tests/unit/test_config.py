"""Settings: defaults < unem.toml < UNEM_* environment < command line, with checked types."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unem.config import SETTINGS, Settings, env_name, is_loopback, load_settings
from unem.errors import BadInput


def write_toml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "unem.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({"workspace": str(tmp_path)}, environ={})
    assert settings == Settings(workspace=tmp_path)
    assert (settings.host, settings.port, settings.open_browser) == ("127.0.0.1", 8765, True)
    assert settings.anonymous_role == "none" and settings.import_roots == ()
    default = load_settings(environ={}, config_file=tmp_path / "absent.toml")
    assert default.workspace == Path("~/unem-workspace").expanduser()


def test_each_source_overrides_the_one_before(tmp_path: Path) -> None:
    write_toml(
        tmp_path, 'port = 1000\nhost = "127.0.0.2"\nlog_level = "warning"\nopen_browser = false\n'
    )
    cli = {"workspace": str(tmp_path), "port": 3000, "host": None}
    environ = {"UNEM_PORT": "2000", "UNEM_HOST": "localhost"}
    settings = load_settings(cli, environ=environ)
    assert settings.port == 3000  # CLI beats environment and file
    assert settings.host == "localhost"  # environment beats file (the CLI left it unset)
    assert settings.log_level == "warning" and settings.open_browser is False  # file only
    assert load_settings({"workspace": str(tmp_path)}, environ={}).port == 1000
    assert load_settings({"workspace": str(tmp_path)}, environ=environ).port == 2000


def test_the_file_is_found_in_the_workspace_the_environment_names(tmp_path: Path) -> None:
    write_toml(tmp_path / "ws", "port = 1234\n")
    settings = load_settings(environ={"UNEM_WORKSPACE": str(tmp_path / "ws")})
    assert settings.workspace == tmp_path / "ws" and settings.port == 1234


def test_an_explicit_config_file_wins_over_the_workspace_one(tmp_path: Path) -> None:
    write_toml(tmp_path / "ws", "port = 1234\n")
    other = write_toml(tmp_path / "elsewhere", "port = 4321\n")
    settings = load_settings({"workspace": str(tmp_path / "ws")}, environ={}, config_file=other)
    assert settings.port == 4321


def test_values_get_their_types(tmp_path: Path) -> None:
    environ = {
        "UNEM_PORT": "9000",
        "UNEM_OPEN_BROWSER": "0",
        "UNEM_IMPORT_ROOTS": os.pathsep.join([str(tmp_path / "a"), "~/b", ""]),
        "UNEM_WORKSPACE": "~/somewhere",
    }
    settings = load_settings(environ=environ)
    assert settings.port == 9000 and settings.open_browser is False
    assert settings.import_roots == (tmp_path / "a", Path.home() / "b")
    assert settings.workspace == Path.home() / "somewhere"
    for word, value in (
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("false", False),
        ("no", False),
        ("off", False),
    ):
        assert load_settings(environ={**environ, "UNEM_OPEN_BROWSER": word}).open_browser is value
    write_toml(tmp_path, f'import_roots = ["{tmp_path}", "~/data"]\nport = 80\n')
    from_file = load_settings({"workspace": str(tmp_path)}, environ={})
    assert from_file.import_roots == (tmp_path, Path.home() / "data") and from_file.port == 80


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("env", {"UNEM_PORT": "eighty"}),
        ("env", {"UNEM_OPEN_BROWSER": "maybe"}),
        ("env", {"UNEM_PORT": "70000"}),
        ("env", {"UNEM_LOG_LEVEL": "verbose"}),
        ("env", {"UNEM_ANONYMOUS_ROLE": "admin"}),
        ("toml", "port = true\n"),
        ("toml", "port = 80.5\n"),
        ("toml", "host = 127\n"),
        ("toml", "workspace = 3\n"),
        ("toml", "open_browser = 'sometimes'\n"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, source: str, text: object) -> None:
    with pytest.raises(BadInput):
        if source == "env":
            assert isinstance(text, dict)
            load_settings({"workspace": str(tmp_path)}, environ=text)
        else:
            assert isinstance(text, str)
            load_settings(environ={}, config_file=write_toml(tmp_path, text))


def test_unknown_settings_in_the_file_are_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 1\nprot = 2\n[server]\nhost = "x"\n')
    with pytest.raises(BadInput, match="unknown settings: prot, server"):
        load_settings(environ={}, config_file=path)


def test_a_broken_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = = 3\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_settings(environ={}, config_file=path)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.0.2", "example.org", ""])
def test_anonymous_viewers_need_a_loopback_host(tmp_path: Path, host: str) -> None:
    with pytest.raises(BadInput, match="requires every user to log in"):
        load_settings(
            {"workspace": str(tmp_path), "host": host, "anonymous_role": "viewer"}, environ={}
        )
    with pytest.raises(BadInput, match="requires every user to log in"):
        load_settings(
            {"workspace": str(tmp_path)},
            environ={"UNEM_HOST": host, "UNEM_ANONYMOUS_ROLE": "viewer"},
        )
    assert load_settings({"workspace": str(tmp_path), "host": host}, environ={}).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "::1"])
def test_loopback_hosts(tmp_path: Path, host: str) -> None:
    assert is_loopback(host)
    settings = load_settings(
        {"workspace": str(tmp_path), "host": host, "anonymous_role": "viewer"}, environ={}
    )
    assert settings.anonymous_role == "viewer"


def test_every_setting_is_declared_once_with_help_and_a_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from unem.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    serve_help = capsys.readouterr().out
    for f in SETTINGS:
        assert f.metadata["help"].endswith("."), f.name
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        assert flag in serve_help and env_name(f.name) in serve_help, f.name


def test_command_line_flags_reach_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unem.cli import build_parser, settings_from

    monkeypatch.setenv("UNEM_PORT", "2000")
    monkeypatch.setenv("UNEM_LOG_LEVEL", "debug")
    roots = next(f.metadata["flag"] for f in SETTINGS if f.name == "import_roots")
    args = build_parser().parse_args(
        [
            "serve",
            "--workspace",
            str(tmp_path),
            "--port",
            "3000",
            "--no-browser",
            roots or "--import-roots",
            str(tmp_path / "a"),
            roots or "--import-roots",
            str(tmp_path / "b"),
        ]
    )
    settings = settings_from(args)
    assert settings.port == 3000 and settings.open_browser is False
    assert settings.log_level == "debug"
    assert settings.import_roots == (tmp_path / "a", tmp_path / "b")
