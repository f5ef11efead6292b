"""Plugin discovery: built-ins, entry points and plugin files, broken plugins listed as data."""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import unem.plugins
from unem.errors import BadInput
from unem.jobs.kinds import discover_kinds
from unem.plugins import (
    LazyModels,
    ModelRegistry,
    PluginSource,
    discover_models,
    plugin_files,
    plugin_paths,
)

BUILTINS = ["unet", "resnet", "highway", "densenet"]
MODEL = """
from pydantic import BaseModel, ConfigDict, Field
from unem.models.spec import ModelSpec

class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(8, ge=1, le=64, description="Feature maps.")

class {cls}(ModelSpec):
    name = "{name}"
    title = "{title}"
    Options = Options
"""
REGISTER = "\ndef register_models(register):\n    register({cls}())\n"
JOB_KIND = """
from pydantic import BaseModel
from unem.jobs.kinds import JobKind

class NoOptions(BaseModel):
    pass

def register_job_kinds(register):
    register(JobKind("{name}", "A job", NoOptions, lambda context, options: None))
"""


def model_plugin(
    folder: Path, stem: str, name: str, cls: str = "Plugged", title: str = "T"
) -> Path:
    path = folder / f"{stem}.py"
    path.write_text(MODEL.format(cls=cls, name=name, title=title) + REGISTER.format(cls=cls))
    return path


def errors(broken: list[Any]) -> dict[str, str]:
    return {Path(b.source).name: b.error for b in broken}


def test_builtins_register_through_the_plugin_hook() -> None:
    registry = discover_models()
    assert list(registry.models) == BUILTINS
    assert registry.broken == []
    assert set(registry.sources.values()) == {"unem.models.builtin"}
    listed = registry.to_json()
    assert [m["name"] for m in listed["models"]] == BUILTINS
    assert listed["broken"] == []
    unet = listed["models"][0]
    assert unet["fields"][:3] == ["depth", "base_filters", "batch_norm"]
    assert unet["schema"]["properties"]["depth"] == {
        "default": 4, "description": unet["schema"]["properties"]["depth"]["description"],
        "maximum": 6, "minimum": 1, "title": "Depth", "type": "integer",
    }  # fmt: skip


def test_get_names_the_known_models() -> None:
    with pytest.raises(BadInput, match=r"Unknown model 'vgg' \(known: densenet, highway, "):
        discover_models().get("vgg")


def test_a_plugin_file_in_a_folder_is_found(tmp_path: Path) -> None:
    model_plugin(tmp_path, "mine", "mine", title="My model")
    (tmp_path / "_private.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "test_mine.py").write_text("raise RuntimeError('never imported')\n")
    registry = discover_models([tmp_path])
    assert list(registry.models) == [*BUILTINS, "mine"]
    assert registry.get("mine").title == "My model"
    assert registry.sources["mine"] == str(tmp_path / "mine.py")
    assert registry.broken == []


def test_broken_plugins_are_listed_and_the_others_still_load(tmp_path: Path) -> None:
    model_plugin(tmp_path, "a_good", "good")
    (tmp_path / "syntax.py").write_text("def register_models(register)\n    pass\n")
    (tmp_path / "raises.py").write_text(
        "def register_models(register):\n    raise RuntimeError('no GPU, no model')\n"
    )
    model_plugin(tmp_path, "twice", "unet")  # the name of a built-in
    (tmp_path / "nohook.py").write_text("X = 1\n")
    path = model_plugin(tmp_path, "half", "half-a")  # its second model is refused: none loads
    path.write_text(path.read_text() + "    register(Plugged)\n")
    registry = discover_models([tmp_path])
    assert list(registry.models) == [*BUILTINS, "good"]
    found = errors(registry.broken)
    assert set(found) == {"syntax.py", "raises.py", "twice.py", "nohook.py", "half.py"}
    assert found["syntax.py"].startswith("SyntaxError: ")
    assert "line 1" in found["syntax.py"]
    assert found["raises.py"] == "RuntimeError: no GPU, no model"
    assert found["twice.py"] == (
        "ValueError: a model named 'unet' is already registered (by unem.models.builtin)"
    )
    assert "register_models(register) or register_job_kinds(register)" in found["nohook.py"]
    assert found["half.py"] == "ValueError: it registers a model named 'half-a' twice"
    assert registry.to_json()["broken"][0].keys() == {"source", "error"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('name = "bad"', 'name = "Bad Name"'), "name must be 1-48 lower-case"),
        (('title = "T"', 'title = ""'), "needs a title"),
        (('extra="forbid"', 'extra="ignore"'), "Options must refuse unknown fields"),
        (("Field(8, ", "Field("), "every field needs a default (width)"),
        (("Options = Options", "Options = dict"), "Options must be a pydantic BaseModel"),
        (("register(Plugged())", "register('bad')"), "takes a ModelSpec, not str"),
    ],
)
def test_invalid_specs_are_refused_with_a_readable_error(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = model_plugin(tmp_path, "plug", "bad")
    path.write_text(path.read_text().replace(*change))
    registry = discover_models([path])
    assert list(registry.models) == BUILTINS
    assert message in errors(registry.broken)["plug.py"]


def test_a_spec_class_is_accepted_and_instantiated(tmp_path: Path) -> None:
    path = model_plugin(tmp_path, "cls", "by-class")
    path.write_text(path.read_text().replace("register(Plugged())", "register(Plugged)"))
    spec = discover_models([path]).get("by-class")
    assert type(spec).__name__ == "Plugged"


def test_one_file_serves_both_registries_and_is_imported_once(tmp_path: Path) -> None:
    model_only = model_plugin(tmp_path, "models_only", "only-model")
    both = tmp_path / "both.py"
    both.write_text(
        "import builtins\nbuiltins.unem_both_imports = getattr(builtins, 'unem_both_imports', 0)"
        " + 1\n" + MODEL.format(cls="P", name="both-model", title="T") + REGISTER.format(cls="P")
        + JOB_KIND.format(name="both-job")
    )  # fmt: skip
    (tmp_path / "jobs_only.py").write_text(JOB_KIND.format(name="only-job"))
    (tmp_path / "neither.py").write_text("X = 1\n")
    models, kinds = discover_models([tmp_path]), discover_kinds([tmp_path])
    assert {"only-model", "both-model"} <= set(models.models)
    assert {"only-job", "both-job"} <= set(kinds.kinds)
    # A file with one hook is no broken plugin for the other registry; one with neither is
    # listed by both, so that each page says why the file did nothing.
    assert set(errors(models.broken)) == set(errors(kinds.broken)) == {"neither.py"}
    import builtins

    assert builtins.unem_both_imports == 1  # type: ignore[attr-defined]
    del builtins.unem_both_imports  # type: ignore[attr-defined]
    assert str(model_only) in models.sources.values()


def test_two_registries_discovering_at_once_share_one_import(tmp_path: Path) -> None:
    """The jobs page and the trainer page may both discover first, in two request threads."""
    (tmp_path / "slow.py").write_text(
        "import builtins, time\ntime.sleep(0.3)\n"
        "builtins.unem_slow_imports = getattr(builtins, 'unem_slow_imports', 0) + 1\n"
        + MODEL.format(cls="P", name="slow-model", title="T") + REGISTER.format(cls="P")
        + JOB_KIND.format(name="slow-job")
    )  # fmt: skip
    found: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda: found.update(models=discover_models([tmp_path]))),
        threading.Thread(target=lambda: found.update(kinds=discover_kinds([tmp_path]))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (found["models"].broken, found["kinds"].broken) == ([], [])
    assert "slow-model" in found["models"].models and "slow-job" in found["kinds"].kinds
    import builtins

    assert builtins.unem_slow_imports == 1  # type: ignore[attr-defined]
    del builtins.unem_slow_imports  # type: ignore[attr-defined]


def test_entry_points_load_after_builtins_and_before_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "their_package"
    package.mkdir(parents=True)
    model_plugin(package, "models", "from-entry-point", cls="Theirs")
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text("import not_installed_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    fake = {
        "unem.models": [
            EntryPoint("theirs", "their_package.models", "unem.models"),
            EntryPoint("hook", "their_package.models:register_models", "unem.models"),
            EntryPoint("gone", "their_package.broken", "unem.models"),
        ]
    }

    def entry_points(group: str) -> list[EntryPoint]:
        return fake.get(group, [])

    monkeypatch.setattr(unem.plugins, "entry_points", entry_points)
    model_plugin(tmp_path, "file", "from-file")
    registry = discover_models([tmp_path / "file.py"])
    assert list(registry.models) == [*BUILTINS, "from-entry-point", "from-file"]
    sources = [b.source for b in registry.broken]
    assert sources == [
        "entry point hook (their_package.models:register_models)",  # the same model twice
        "entry point gone (their_package.broken)",
    ]
    assert "ModuleNotFoundError: No module named 'not_installed_anywhere'" in (
        registry.broken[1].error
    )
    assert discover_kinds([]).broken == []  # another group: none of these is a job kind


def test_unreadable_entry_points_are_one_broken_source(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        raise ValueError("bad METADATA")

    monkeypatch.setattr(unem.plugins, "entry_points", entry_points)
    registry = discover_models()
    assert list(registry.models) == BUILTINS
    assert errors(registry.broken) == {"entry points unem.models": "ValueError: bad METADATA"}


def test_a_failing_import_is_retried_once_the_file_is_fixed(tmp_path: Path) -> None:
    path = tmp_path / "later.py"
    path.write_text("raise ImportError('keras missing')\n")
    assert "keras missing" in errors(discover_models([path]).broken)["later.py"]
    model_plugin(tmp_path, "later", "later")
    assert "later" in discover_models([path]).models


def test_a_missing_plugin_file_is_broken_not_fatal(tmp_path: Path) -> None:
    registry = discover_models([tmp_path / "nowhere.py"])
    assert errors(registry.broken)["nowhere.py"].startswith("FileNotFoundError")


def test_a_plugin_calling_exit_does_not_stop_discovery(tmp_path: Path) -> None:
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(3)\n")
    assert errors(discover_models([tmp_path]).broken) == {"quits.py": "SystemExit: 3"}


def test_plugin_paths_lists_repository_workspace_then_settings(tmp_path: Path) -> None:
    repository = Path(unem.plugins.__file__).resolve().parents[1] / "plugins"
    workspace = tmp_path / "ws"
    assert plugin_paths((), workspace) == (repository,)  # no workspace plugins folder yet
    (workspace / "plugins").mkdir(parents=True)
    extra = tmp_path / "extra.py"
    assert plugin_paths([extra, str(repository)], workspace) == (
        repository,
        (workspace / "plugins").resolve(),
        extra.resolve(),
    )
    assert plugin_paths() == (repository,)


def test_plugin_files_skip_private_and_test_files_and_repeat_none(tmp_path: Path) -> None:
    for name in ("b.py", "a.py", "_private.py", "test_a.py", "notes.txt"):
        (tmp_path / name).write_text("")
    assert plugin_files([tmp_path, tmp_path / "a.py"]) == [tmp_path / "a.py", tmp_path / "b.py"]


def test_lazy_models_discover_once_from_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, ...]] = []

    def discover(paths: tuple[Path, ...]) -> ModelRegistry:
        calls.append(paths)
        return ModelRegistry()

    lazy = LazyModels([Path("x")])
    monkeypatch.setattr(lazy, "_discover", discover)
    assert calls == []  # nothing happens until the first call
    results: list[ModelRegistry] = []
    threads = [threading.Thread(target=lambda: results.append(lazy())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [(Path("x"),)]
    assert all(r is results[0] for r in results)


def test_a_registry_loads_any_source(tmp_path: Path) -> None:
    registry = ModelRegistry()
    registry.load(PluginSource("inline", lambda: lambda register: None))
    registry.load(PluginSource("nothing", lambda: object()))
    assert errors(registry.broken) == {
        "nothing": "AttributeError: it has no register_models(register) function"
    }
