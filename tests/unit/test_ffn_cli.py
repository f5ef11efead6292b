"""`main.py ffn prep|train|infer|list` on a crop of the FlyEM medulla sample: each step a
real job in a worker process, through the job table, as the FFN page runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unem.cli import main
from unem.jobs import table
from unem.volumes.datasets import get_dataset, list_datasets
from unem.volumes.store import open_level
from unem.workspace import Workspace

pytestmark = pytest.mark.timeout(600)
CROP = (slice(0, 24), slice(0, 96), slice(0, 96))


@pytest.fixture
def medulla_cli(data: Path, tmp_path: Path) -> tuple[Path, str]:
    """A workspace with a 24×96×96 crop of the medulla sample and its body ground truth,
    imported from the command line."""
    import tifffile
    from PIL import Image

    folder = data / "flyem_fib_medulla_neuroproof_sample2"
    files = sorted((folder / "grayscale_maps").glob("iso.*.png"))[CROP[0]]
    image = np.stack([np.asarray(Image.open(f))[CROP[1:]] for f in files])
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "bodies.npy", tifffile.imread(folder / "groundtruth_bodies.tif")[CROP])
    ws = tmp_path / "ws"
    args = ["import", "medulla", str(tmp_path / "image.npy"), "--workspace", str(ws)]
    assert main([*args, "--groundtruth", str(tmp_path / "bodies.npy")]) == 0
    return ws, list_datasets(Workspace(ws))[0].id


def result_of(out: str) -> dict[str, object]:
    """The job's result: the JSON object `run_job_here` prints last."""
    parsed: dict[str, object] = json.loads(out[out.index("{") :])
    return parsed


def test_prep_train_infer_from_the_command_line(
    medulla_cli: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, dataset = medulla_cli
    where = ["--workspace", str(ws)]
    prep = ["ffn", "prep", dataset, *where, "--preset", "cpu_tiny", "--name", "crop"]
    assert main([*prep, "--set", "min_size=500", "--set", "max_per_partition=2000"]) == 0
    prepared = result_of(capsys.readouterr().out)
    assert prepared["preparation"] == "crop" and int(str(prepared["objects"])) > 3

    # No --preset: the preparation's geometry (cpu_tiny) is used.
    train = ["ffn", "train", "crop", *where, "--name", "crop-ffn", "--set", "steps=4"]
    assert main([*train, "--set", "batch_size=2", "--set", "checkpoint_every=2"]) == 0
    trained = result_of(capsys.readouterr().out)
    assert trained["model"] == "crop-ffn" and trained["steps"] == 4
    info = json.loads((ws / "models" / "crop-ffn" / "model.json").read_text())
    assert info["preset"] == "cpu_tiny" and info["fov"] == [9, 17, 17]

    assert main(["ffn", "list", *where]) == 0
    listed = capsys.readouterr().out
    assert "cpu_sparse_z" in listed and "crop " in listed and "crop-ffn" in listed

    infer = ["ffn", "infer", "--model", "crop-ffn", "--dataset", dataset, *where]
    options = ["--set", 'box="0:16,0:64,0:64"', "--set", "seed_policy=grid"]
    options += ["--set", "min_segment_size=10", "--set", "grid_step=[4, 16, 16]"]
    assert main([*infer, "--output", "ffn-crop", *options]) == 0
    segmented = result_of(capsys.readouterr().out)
    assert (
        segmented["layer"] == "ffn-crop"
        and segmented["probability_layer"] == "ffn-crop-probability"
    )
    assert {"objects", "voxels_per_second", "model_share"} <= set(segmented)
    layers = get_dataset(Workspace(ws), dataset).layers
    assert layers["ffn-crop"].kind == "segmentation" and layers["ffn-crop-probability"]
    labels = np.asarray(open_level(Workspace(ws).dataset_dir(dataset) / "ffn-crop.zarr", "0"))
    assert labels.shape == (24, 96, 96) and not labels[16:].any() and not labels[:, 64:].any()

    jobs = table.list_jobs(Workspace(ws).db)
    assert [(j.kind, j.state) for j in reversed(jobs)] == [
        ("ffn-prep", "done"), ("ffn-train", "done"), ("ffn-infer", "done")
    ]  # fmt: skip


def test_ffn_errors_say_what_to_do(
    medulla_cli: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, dataset = medulla_cli
    where = ["--workspace", str(ws)]
    assert main(["ffn", "train", "nothing-prepared", *where]) == 2
    assert "run ffn-prep first" in capsys.readouterr().err
    assert main(["ffn", "prep", dataset, *where, "--preset", "huge"]) == 2
    assert "cpu_tiny" in capsys.readouterr().err  # the presets there are
    assert main(["ffn", "infer", "--model", "none", "--dataset", dataset, *where]) == 2
    assert "No trained FFN model 'none'" in capsys.readouterr().err
    assert table.list_jobs(Workspace(ws).db) == []
