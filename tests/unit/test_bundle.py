"""The standalone bundle's pure parts, without building it: the frozen worker command line,
the spawn start method, and the smoke test's input digest and stack writer."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.jobs_support import TEST_PLUGIN
from unem.jobs import processes
from unem.jobs.foreground import run_in_foreground
from unem.jobs.tensorboard import tensorboard_command
from unem.workspace import Workspace


def load_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unem_smoke", ROOT / "packaging" / "smoke.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


smoke = load_smoke()


def freeze(monkeypatch: pytest.MonkeyPatch, executable: Path | str) -> None:
    """Make this process look like the bundle's executable (PyInstaller sets sys.frozen)."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(executable))


def test_a_frozen_server_starts_workers_with_its_own_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    assert processes.worker_command(7, ws) == [
        sys.executable, "-m", "unem.jobs.worker", "7", "--workspace", str(ws),
    ]  # fmt: skip
    freeze(monkeypatch, "/opt/unem/unem")
    assert processes.worker_command(7, ws) == [
        "/opt/unem/unem", "--run-module", "unem.jobs.worker", "7", "--workspace", str(ws),
    ]  # fmt: skip
    board = tensorboard_command(ws / "jobs", 6006)
    assert board[:3] == ["/opt/unem/unem", "--run-module", "unem.jobs.tensorboard_main"]


@pytest.mark.skipif(os.name == "nt", reason="the stand-in executable is a shell script")
def test_a_job_runs_to_the_end_in_a_frozen_style_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workspace: Workspace
) -> None:
    """A stand-in for the bundle's executable (main.py's entry, no `-m`) runs a real job."""
    executable = tmp_path / "unem"
    calls = tmp_path / "calls.txt"
    executable.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        f'exec "{sys.executable}" -c "import sys; from unem.cli import main; '
        'sys.exit(main(sys.argv[1:]))" "$@"\n'
    )
    executable.chmod(0o755)
    freeze(monkeypatch, executable)
    job = run_in_foreground(workspace, "test-steps", {"steps": 3}, "a", [TEST_PLUGIN])
    assert (job.state, job.step, job.result) == ("done", 3, {"steps": 3, "resumed": False})
    argv = calls.read_text().split()
    assert argv[:3] == ["--run-module", "unem.jobs.worker", str(job.id)]


def test_the_command_line_makes_children_spawn() -> None:
    code = (
        "import multiprocessing; from unem.cli import main; main(['--run-module', 'os']); "
        "print(multiprocessing.get_start_method())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "spawn"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A repository with the bundle's inputs and something else."""
    (tmp_path / "packaging" / "sub").mkdir(parents=True)
    (tmp_path / "packaging" / "unem.spec").write_text("spec")
    (tmp_path / "packaging" / "sub" / "hook.py").write_text("hook")
    for name in ("pyproject.toml", "package-lock.json", "main.py", "README.md"):
        (tmp_path / name).write_text(name)
    return tmp_path


def test_the_digest_covers_the_inputs_and_nothing_else(inputs: Path) -> None:
    record = inputs / "packaging" / smoke.RECORD.name
    names = [p.relative_to(inputs).as_posix() for p in smoke.input_files(inputs)]
    assert names == [
        "main.py", "package-lock.json", "packaging/sub/hook.py", "packaging/unem.spec",
        "pyproject.toml",
    ]  # fmt: skip
    before = smoke.inputs_digest(inputs)
    (inputs / "README.md").write_text("changed")
    (inputs / "packaging" / "__pycache__").mkdir()
    (inputs / "packaging" / "__pycache__" / "smoke.cpython-311.pyc").write_bytes(b"\0")
    record.write_text("anything")
    assert smoke.inputs_digest(inputs) == before
    (inputs / "main.py").write_text("main.py ")
    assert smoke.inputs_digest(inputs) != before
    (inputs / "main.py").write_text("main.py")
    (inputs / "packaging" / "sub" / "hook.py").rename(inputs / "packaging" / "sub" / "hook2.py")
    assert smoke.inputs_digest(inputs) != before


def test_a_record_marks_the_inputs_as_tested_until_they_change(inputs: Path) -> None:
    record = inputs / "packaging" / smoke.RECORD.name
    assert smoke.inputs_changed(inputs, record)  # never recorded
    digest = smoke.write_record(inputs, record)
    assert smoke.recorded_digest(record) == digest
    assert not smoke.inputs_changed(inputs, record)  # the record is not an input of itself
    (inputs / "pyproject.toml").write_text('dependencies = ["more"]')
    assert smoke.inputs_changed(inputs, record)


def test_the_smoke_stack_is_a_valid_npy_pair(tmp_path: Path) -> None:
    image, labels = smoke.membrane_stack(slices=3, size=40)
    (tmp_path / "image.npy").write_bytes(image)
    (tmp_path / "labels.npy").write_bytes(labels)
    loaded = np.load(tmp_path / "image.npy")
    truth = np.load(tmp_path / "labels.npy")
    assert loaded.shape == truth.shape == (3, 40, 40) and loaded.dtype == truth.dtype == np.uint8
    assert set(np.unique(truth)) == {0, 1}
    assert loaded[truth == 0].max() < loaded[truth == 1].min()  # membranes are darker
