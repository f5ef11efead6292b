"""Job kinds, registered like plugins: a name, an options schema, a function, a resource class.

Built-in kinds register through the same door as third-party ones (`unem.plugins`): a module
with a `register_job_kinds(register)` function, found among the built-ins, the entry points of
group `unem.jobs`, or the plugin files and folders of the `plugins` setting. Discovery never
raises: a plugin that fails to load is listed with its error.

The server imports kind modules to read their schemas, so a kind module must stay light:
heavy imports (TensorFlow, Keras, scipy) belong inside the kind's function, which only
ever runs in a worker process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unem.errors import BadInput
from unem.forms import form_schema
from unem.plugins import (
    JOBS_HOOK,
    BrokenPlugin,
    Lazy,
    import_file,
    plugin_files,
    plugin_sources,
    run_hook,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from unem.jobs.context import JobContext
    from unem.workspace import Workspace

__all__ = [  # BrokenPlugin and the file loader moved to unem.plugins; still importable here
    "BrokenPlugin",
    "JobKind",
    "KindRegistry",
    "LazyKinds",
    "discover_kinds",
    "import_file",
    "plugin_files",
]

RESOURCES = ("accelerator", "cpu")  # accelerator: one at a time (GPU); cpu: a small pool beside
HOOK = JOBS_HOOK
BUILTIN_MODULES = (
    "unem.jobs.builtin",
    "unem.train2d.jobs",
    "unem.filters.jobs",
    "unem.filters.pipeline_jobs",
    "unem.ffn.jobs",
    "unem.ffn.infer_jobs",
    "unem.meshes.jobs",
    "unem.evaluation_jobs",
)
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
        schema = form_schema(self.options)
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "resource": self.resource,
            "resumable": self.resumable,
            "schema": schema,
            "fields": list(schema.get("properties", {})),  # in order: JSON objects lose it
        }


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


def discover_kinds(plugins: Sequence[Path] = ()) -> KindRegistry:
    """Every job kind: built-ins, entry points (group `unem.jobs`), then plugin files.

    A plugin file with only `register_models` is not a broken job-kind plugin (see
    `unem.plugins`, which imports each file once for both registries)."""
    registry = KindRegistry()
    for source in plugin_sources(BUILTIN_MODULES, ENTRY_POINT_GROUP, plugins):
        run_hook(source, HOOK, registry.register, registry.broken)
    return registry


class LazyKinds(Lazy[KindRegistry]):
    """Discover on first use: the server starts without importing pydantic or any plugin."""

    def __init__(self, plugins: Sequence[Path] = ()) -> None:
        super().__init__(discover_kinds, plugins)
        self.plugins = self.paths
