"""Settings, declared once with their default and help text.

A setting is read, from lowest to highest priority, from its default, the `unem.toml` file
(in the workspace, or the file given with `--config`), the `UNEM_<NAME>` environment variable,
and the command line. The CLI flags, the README's settings table and the tests all read
`SETTINGS`, so a new setting is added in one place only.
"""

# ruff: noqa: RUF009  (`setting` only wraps dataclasses.field, so its defaults are not shared)
from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unem.errors import BadInput

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ROLES_FOR_ANONYMOUS = ("none", "viewer")
LOG_LEVELS = ("debug", "info", "warning", "error")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def setting(default: Any, help: str, *, flag: str | None = None) -> Any:
    """Declare one setting: its default, its help text and, optionally, a CLI flag name."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass(frozen=True)
class Settings:
    """Every setting of UNEM. Paths are expanded; lists come from TOML arrays or os.pathsep."""

    workspace: Path = setting(
        Path("~/unem-workspace"),
        "Folder holding the database, volumes, jobs, meshes and models.",
    )
    host: str = setting(
        "127.0.0.1",
        "Address the server listens on. Anything but loopback requires every user to log in.",
    )
    port: int = setting(8765, "Port of the server; a free one is chosen if it is taken.")
    open_browser: bool = setting(
        True,
        "Open the browser on the admin URL at start-up (--no-browser: do not).",
        flag="--no-browser",
    )
    import_roots: tuple[Path, ...] = setting(
        (),
        "Folders (besides the workspace) from which admins may import data through the web.",
        flag="--import-root",
    )
    plugins: tuple[Path, ...] = setting(
        (),
        "Python files, or folders of them, with plugins (models, job kinds) besides the "
        "repository's and the workspace's plugins/ folders.",
        flag="--plugin",
    )
    anonymous_role: str = setting(
        "none",
        "Role of visitors who have not logged in: none or viewer (loopback servers only).",
    )
    log_level: str = setting("info", "Logging level: debug, info, warning or error.")


SETTINGS: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(Settings)


def env_name(name: str) -> str:
    return f"UNEM_{name.upper()}"


def parse_value(name: str, raw: Any) -> Any:
    """Convert a raw value (a string from the environment, or a TOML value) to a setting's type."""
    default = Settings.__dataclass_fields__[name].default
    try:
        if isinstance(default, bool):
            return parse_bool(raw)
        if isinstance(default, int):
            return parse_int(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
        if isinstance(default, tuple):
            items = raw if isinstance(raw, list | tuple) else str(raw).split(os.pathsep)
            return tuple(Path(item).expanduser() for item in items if str(item))
        if not isinstance(raw, str):
            raise TypeError(f"expected text, got {type(raw).__name__}")
        return raw
    except (TypeError, ValueError) as error:
        raise BadInput(f"Setting {name!r} cannot be {raw!r}: {error}") from error


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"say one of {', '.join(sorted(TRUE_WORDS | FALSE_WORDS))}")
    return word in TRUE_WORDS


def parse_int(raw: Any) -> int:
    # TOML `true` and `8765.5` would otherwise become 1 and 8765 without a word.
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise TypeError(f"expected a whole number, got {type(raw).__name__}")
    return int(raw)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{path} is not valid TOML: {error}") from error


def load_settings(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge defaults, unem.toml, UNEM_* environment variables and CLI values (in that order)."""
    cli = {key: value for key, value in (cli or {}).items() if value is not None}
    environ = os.environ if environ is None else environ
    from_env = {f.name: environ[env_name(f.name)] for f in SETTINGS if env_name(f.name) in environ}
    workspace = cli.get("workspace") or from_env.get("workspace") or Settings.workspace
    toml_path = config_file or Path(workspace).expanduser() / "unem.toml"
    from_toml = read_toml(toml_path) if toml_path.is_file() else {}
    unknown = set(from_toml) - {f.name for f in SETTINGS}
    if unknown:
        raise BadInput(f"{toml_path} names unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for source in (from_toml, from_env, cli):
        values.update({name: parse_value(name, raw) for name, raw in source.items()})
    values.setdefault("workspace", Settings.workspace.expanduser())
    return validate(Settings(**values))


def validate(settings: Settings) -> Settings:
    """`settings` if they are consistent; BadInput naming the first problem otherwise."""
    if settings.anonymous_role not in ROLES_FOR_ANONYMOUS:
        raise BadInput(f"anonymous_role must be one of {', '.join(ROLES_FOR_ANONYMOUS)}.")
    if settings.log_level not in LOG_LEVELS:
        raise BadInput(f"log_level must be one of {', '.join(LOG_LEVELS)}.")
    if not 0 <= settings.port <= 65535:
        raise BadInput(f"port must be between 0 and 65535, not {settings.port}.")
    if settings.anonymous_role != "none" and not is_loopback(settings.host):
        raise BadInput(
            f"anonymous_role={settings.anonymous_role!r} is refused on host {settings.host}: "
            "a server reachable from other machines requires every user to log in."
        )
    return settings


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
