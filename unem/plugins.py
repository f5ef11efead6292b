"""Plugins through one door: models and job kinds, built-in or third-party.

A plugin is a module with `register_models(register)` and/or `register_job_kinds(register)`.
It is found among the built-ins, the entry points (group `unem.models` for models,
`unem.jobs` for job kinds), or the `*.py` files of the plugin folders (`_private.py` and
`test_*.py` are skipped). Built-in models register through the very hook a plugin uses, so
the plugin path runs every day.

Discovery never raises: a plugin that cannot be imported, whose hook raises, or that
registers something invalid is listed in `broken` with a readable error, and the others
still load. A plugin *file* with only one of the two hooks is fine for the other registry; a
file with neither is listed as broken by both registries (each page then says why the file
did nothing). Each file is imported once per process, whatever the number of registries.

This module imports neither Keras nor Flask, nor pydantic until discovery runs: the server
reads models' schemas through it, and model modules import Keras only inside `build`, which
runs in worker processes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from unem.errors import BadInput
from unem.forms import form_schema

if TYPE_CHECKING:
    from unem.models.spec import ModelSpec

log = logging.getLogger(__name__)

MODELS_HOOK = "register_models"
JOBS_HOOK = "register_job_kinds"
HOOKS = (MODELS_HOOK, JOBS_HOOK)
MODELS_GROUP = "unem.models"
BUILTIN_MODEL_MODULES = ("unem.models.builtin",)  # by name: the server never imports Keras
NOT_IDENTIFIER = re.compile(r"\W")
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,47}$")

IMPORT_LOCK = threading.RLock()  # a plugin may import another plugin file
R = TypeVar("R")


@dataclass(frozen=True)
class BrokenPlugin:
    source: str
    error: str


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from (`source`, shown to users) and how to load it."""

    source: str
    load: Callable[[], object]
    is_file: bool = False


def plugin_paths(
    settings_plugins: Iterable[Path | str] = (), workspace_root: Path | str | None = None
) -> tuple[Path, ...]:
    """The plugin files and folders to search: the repository's `plugins/`, the workspace's
    `plugins/` (each if it exists), then the configured ones; each path once."""
    import unem

    found = [Path(unem.__file__).resolve().parent.parent / "plugins"]
    if workspace_root is not None:
        found.append(Path(workspace_root) / "plugins")
    paths = [p for p in found if p.is_dir()] + [Path(p) for p in settings_plugins]
    return tuple(dict.fromkeys(p.resolve() for p in paths))


def plugin_files(paths: Iterable[Path]) -> list[Path]:
    """The Python files named, and those inside the folders named (not `_*.py`, `test_*.py`);
    each file once."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith(("_", "test_")))
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def import_file(path: Path) -> ModuleType:
    """Import a plugin file once per process (a file with both hooks serves both registries)."""
    with IMPORT_LOCK:  # the jobs and the models registries may discover in two threads
        return _import_file(Path(path))


def _import_file(path: Path) -> ModuleType:
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    name = f"unem_plugin_{NOT_IDENTIFIER.sub('_', resolved.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    if not resolved.is_file():
        raise FileNotFoundError(f"no such plugin file: {path}")
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a fixed file imports afresh next time
        raise
    return module


def plugin_sources(
    builtins: Sequence[str], group: str, paths: Iterable[Path]
) -> list[PluginSource]:
    """Built-in modules, then the entry points of `group`, then the plugin files."""
    sources = [PluginSource(m, functools.partial(importlib.import_module, m)) for m in builtins]
    try:
        found = entry_points(group=group)
    except Exception as error:  # broken package metadata somewhere in the environment
        sources.append(PluginSource(f"entry points {group}", functools.partial(fail, error)))
    else:
        sources += [PluginSource(f"entry point {e.name} ({e.value})", e.load) for e in found]
    sources += [
        PluginSource(str(p), functools.partial(import_file, p), is_file=True)
        for p in plugin_files(paths)
    ]
    return sources


def fail(error: Exception) -> object:
    raise error


def run_hook(
    source: PluginSource, hook: str, register: Callable[[Any], None], broken: list[BrokenPlugin]
) -> bool:
    """Load a plugin and call its `hook(register)`; a failure goes to `broken`, never raised.

    True when the hook ran to its end. A file that has only the other hook is skipped quietly.
    """
    try:
        loaded = source.load()
        function = getattr(loaded, hook, None)
        if function is None and callable(loaded):  # an entry point naming the function
            function = loaded
        if function is None:
            if source.is_file and any(hasattr(loaded, h) for h in HOOKS):
                return False
            wanted = " or ".join(f"{h}(register)" for h in (HOOKS if source.is_file else (hook,)))
            raise AttributeError(f"it has no {wanted} function")
        function(register)
    except (Exception, SystemExit) as error:
        log.warning("plugin %s is broken", source.source, exc_info=True)
        broken.append(BrokenPlugin(source.source, f"{type(error).__name__}: {error}"))
        return False
    return True


@dataclass
class ModelRegistry:
    """The models the trainer can build, by name, and the plugins that failed to load."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # model name → plugin source

    def load(self, source: PluginSource) -> None:
        """Register the models of one plugin: all of them, or none if any is refused."""
        staged: dict[str, ModelSpec] = {}

        def register(spec: ModelSpec | type[ModelSpec]) -> None:
            spec = check_model_spec(spec)
            if spec.name in staged:
                raise ValueError(f"it registers a model named {spec.name!r} twice")
            if spec.name in self.models:
                by = self.sources.get(spec.name, "?")
                raise ValueError(f"a model named {spec.name!r} is already registered (by {by})")
            staged[spec.name] = spec

        if run_hook(source, MODELS_HOOK, register, self.broken):
            self.models.update(staged)
            self.sources.update(dict.fromkeys(staged, source.source))

    def get(self, name: str) -> ModelSpec:
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise BadInput(f"Unknown model {name!r} (known: {known}).")
        return self.models[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "models": [spec.to_json() for spec in self.models.values()],
            "broken": [{"source": b.source, "error": b.error} for b in self.broken],
        }


def check_model_spec(spec: object) -> ModelSpec:
    """The spec, checked (ValueError/TypeError saying what is wrong); a class is instantiated."""
    from unem.models.spec import ModelSpec

    if isinstance(spec, type) and issubclass(spec, ModelSpec):
        spec = spec()
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register() takes a ModelSpec, not {type(spec).__name__}")
    kind = type(spec).__name__
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise ValueError(
            f"{kind}.name must be 1-48 lower-case letters, digits, '-', '_' or '.', not {name!r}"
        )
    title = getattr(spec, "title", None)
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"{kind} ({name}) needs a title: the name the trainer page shows")
    check_options(spec, f"{kind} ({name})")
    return spec


def check_options(spec: ModelSpec, what: str) -> None:
    from pydantic import BaseModel

    options = getattr(spec, "Options", None)
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise TypeError(f"{what}.Options must be a pydantic BaseModel class, not {options!r}")
    if options.model_config.get("extra") != "forbid":
        raise ValueError(
            f"{what}.Options must refuse unknown fields: model_config = ConfigDict(extra='forbid')"
        )
    required = [n for n, f in options.model_fields.items() if f.is_required()]
    if required:
        raise ValueError(f"{what}.Options: every field needs a default ({', '.join(required)})")
    form_schema(options)  # the form is generated from it: fail here, not in the page
    options()


def discover_models(paths: Sequence[Path] = ()) -> ModelRegistry:
    """Every model: built-ins, entry points (group `unem.models`), then plugin files."""
    registry = ModelRegistry()
    for source in plugin_sources(BUILTIN_MODEL_MODULES, MODELS_GROUP, paths):
        registry.load(source)
    return registry


class Lazy(Generic[R]):
    """Discover on first call, once, from any thread: the server starts without importing
    pydantic or any plugin."""

    def __init__(self, discover: Callable[[Sequence[Path]], R], paths: Sequence[Path] = ()):
        self.paths = tuple(paths)
        self._discover = discover
        self._registry: R | None = None
        self._lock = threading.Lock()

    def __call__(self) -> R:
        with self._lock:
            if self._registry is None:
                self._registry = self._discover(self.paths)
            return self._registry


class LazyModels(Lazy[ModelRegistry]):
    def __init__(self, paths: Sequence[Path] = ()) -> None:
        super().__init__(discover_models, paths)
