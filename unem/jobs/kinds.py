"""Job kinds, registered like plugins: a name, an options schema, a function, a resource class.

Built-in kinds register through the same door as third-party ones: a module with a
`register_job_kinds(register)` function, found among the built-ins, the entry points of
group `unem.jobs`, or the plugin files and folders of the `plugins` setting. Discovery never
raises: a plugin that fails to load is listed with its error.

The server imports kind modules to read their schemas, so a kind module must stay light:
heavy imports (TensorFlow, Keras, scipy) belong inside the kind's function, which only
ever runs in a worker process.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from unem.errors import BadInput

if TYPE_CHECKING:
    from pydantic import BaseModel

    from unem.jobs.context import JobContext
    from unem.workspace import Workspace

RESOURCES = ("accelerator", "cpu")  # accelerator: one at a time (GPU); cpu: a small pool beside
HOOK = "register_job_kinds"
BUILTIN_MODULES = ("unem.jobs.builtin",)
ENTRY_POINT_GROUP = "unem.jobs"


@dataclass(frozen=True)
class JobKind:
    """What a job does. `run(context, options)` runs in the worker; its return value (JSON)
    is the job's result. `check(workspace, options)` runs in the server at submission, to
    refuse what cannot work (an unknown dataset) before a worker starts."""

    name: str
    title: str
    options: type[BaseModel]
    run: Callable[[JobContext, Any], Any]
    resource: str = "cpu"
    resumable: bool = False
    description: str = ""
    describe: Callable[[Any], str] | None = None  # the title of one job, from its options
    check: Callable[[Workspace, Any], None] | None = None

    def validate(self, options: Mapping[str, Any]) -> BaseModel:
        """The options as the schema reads them, or BadInput listing every problem."""
        from pydantic import ValidationError

        try:
            return self.options.model_validate(dict(options))
        except ValidationError as error:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in error.errors()
            ]
            summary = "; ".join(f"{p['field'] or 'options'}: {p['message']}" for p in problems)
            raise BadInput(f"Invalid options for {self.name}: {summary}", problems) from error

    def job_title(self, options: Any) -> str:
        return self.describe(options) if self.describe else self.title

    def to_json(self) -> dict[str, Any]:
        schema = self.options.model_json_schema()
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "resource": self.resource,
            "resumable": self.resumable,
            "schema": schema,
            "fields": list(schema.get("properties", {})),  # in order: JSON objects lose it
        }


@dataclass(frozen=True)
class BrokenPlugin:
    source: str
    error: str


@dataclass
class KindRegistry:
    kinds: dict[str, JobKind] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)

    def register(self, kind: JobKind) -> None:
        if kind.resource not in RESOURCES:
            raise ValueError(f"kind {kind.name!r}: resource must be one of {RESOURCES}")
        if kind.name in self.kinds:
            raise ValueError(f"a job kind named {kind.name!r} is already registered")
        self.kinds[kind.name] = kind

    def get(self, name: str) -> JobKind:
        if name not in self.kinds:
            known = ", ".join(sorted(self.kinds)) or "none"
            raise BadInput(f"Unknown job kind {name!r} (known: {known}).")
        return self.kinds[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "kinds": [kind.to_json() for kind in self.kinds.values()],
            "broken": [{"source": b.source, "error": b.error} for b in self.broken],
        }


def plugin_files(paths: Iterable[Path]) -> list[Path]:
    """The Python files named, and those inside the folders named (not `_private.py`)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        else:
            files.append(path)
    return files


def import_file(path: Path) -> ModuleType:
    name = f"unem_plugin_{path.stem}_{abs(hash(str(path.resolve()))):x}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _load(registry: KindRegistry, source: str, load: Callable[[], Any]) -> None:
    """Register the kinds of one plugin; a failure is recorded, never raised."""
    try:
        loaded = load()
        hook = getattr(loaded, HOOK, loaded if callable(loaded) else None)
        if hook is None:
            raise AttributeError(f"it has no {HOOK}(register) function")
        hook(registry.register)
    except Exception as error:
        registry.broken.append(BrokenPlugin(source, f"{type(error).__name__}: {error}"))


def discover_kinds(plugins: Sequence[Path] = ()) -> KindRegistry:
    """Every job kind: built-ins, entry points (group `unem.jobs`), then plugin files."""
    registry = KindRegistry()
    for module in BUILTIN_MODULES:
        _load(registry, module, functools.partial(importlib.import_module, module))
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _load(registry, f"entry point {entry.name} ({entry.value})", entry.load)
    for path in plugin_files(plugins):
        _load(registry, str(path), functools.partial(import_file, path))
    return registry


class LazyKinds:
    """Discover on first use: the server starts without importing pydantic or any plugin."""

    def __init__(self, plugins: Sequence[Path] = ()) -> None:
        self.plugins = tuple(plugins)
        self._registry: KindRegistry | None = None
        self._lock = threading.Lock()

    def __call__(self) -> KindRegistry:
        with self._lock:
            if self._registry is None:
                self._registry = discover_kinds(self.plugins)
            return self._registry
