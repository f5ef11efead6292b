"""Headless training and inference: `main.py train`, `infer`, `models`, `run`, each running
a real worker process through the job table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unem.cli import main, parse_settings
from unem.errors import UnemError
from unem.jobs import table
from unem.volumes.datasets import list_datasets
from unem.volumes.store import open_level
from unem.workspace import Workspace

pytestmark = pytest.mark.timeout(300)


def test_settings_parse_json_values_and_dotted_keys() -> None:
    parsed = parse_settings(["steps=50", "augment.elastic=0.5", "slices=0-3", "name=x=y"])
    assert parsed == {"steps": 50, "augment": {"elastic": 0.5}, "slices": "0-3", "name": "x=y"}
    with pytest.raises(UnemError, match="KEY=VALUE"):
        parse_settings(["steps"])


@pytest.fixture
def cli_dataset(tmp_path: Path) -> tuple[Path, str]:
    rng = np.random.default_rng(0)
    labels = np.zeros((4, 64, 64), np.uint8)
    labels[:, 10:30, 10:30] = 1
    labels[:, 40:56, 36:60] = 1
    image = np.clip(labels * 120.0 + 60 + rng.normal(0, 15, labels.shape), 0, 255)
    np.save(tmp_path / "image.npy", image.astype(np.uint8))
    np.save(tmp_path / "labels.npy", labels)
    ws = tmp_path / "ws"
    args = ["import", "blobs", str(tmp_path / "image.npy"), "--workspace", str(ws)]
    assert main([*args, "--groundtruth", str(tmp_path / "labels.npy")]) == 0
    return ws, list_datasets(Workspace(ws))[0].id


def test_train_then_infer_from_the_command_line(
    cli_dataset: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws, dataset = cli_dataset
    train = ["train", dataset, "--workspace", str(ws), "--label-layer", "groundtruth"]
    options = ["--set", "steps=6", "--set", "validate_every=3", "--set", "patch_size=32"]
    options += ["--set", "batch_size=2", "--model-set", "depth=2", "--model-set", "base_filters=4"]
    assert main([*train, *options, "--name", "cli-net"]) == 0
    out = capsys.readouterr().out
    assert "done" in out and '"model": "cli-net"' in out
    jobs = table.list_jobs(Workspace(ws).db)
    assert [(j.kind, j.state) for j in jobs] == [("train2d", "done")]

    assert main(["models", "trained", "--workspace", str(ws)]) == 0
    assert "cli-net" in capsys.readouterr().out
    assert main(["models", "list", "--workspace", str(ws)]) == 0
    listed = capsys.readouterr().out
    assert "unet" in listed and "densenet" in listed

    keras_file = ws / "models" / "cli-net" / "model.keras"
    copy = tmp_path / "shared-net.keras"
    copy.write_bytes(keras_file.read_bytes())
    infer = ["infer", "--model", str(copy), "--dataset", dataset, "--workspace", str(ws)]
    assert main([*infer, "--set", "tile_size=64"]) == 0
    assert "Imported" in capsys.readouterr().out
    layer = Workspace(ws).dataset_dir(dataset) / "prediction.zarr"
    assert np.asarray(open_level(layer, "0")).shape == (4, 64, 64)


def test_a_refused_job_says_why_and_changes_nothing(
    cli_dataset: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, dataset = cli_dataset
    assert main(["train", dataset, "--workspace", str(ws), "--model", "nope"]) == 2
    assert "Unknown model 'nope'" in capsys.readouterr().err
    assert main(["run", "no-such-kind", "--workspace", str(ws)]) == 2
    assert table.list_jobs(Workspace(ws).db) == []
