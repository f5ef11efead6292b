"""The real job kinds end to end (pyramid, gaussian) and how kinds are discovered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from tests.jobs_support import TEST_PLUGIN, wait_for
from unem.errors import BadInput
from unem.filters.gaussian import gaussian_layer
from unem.jobs.kinds import discover_kinds
from unem.jobs.runner import JobRunner
from unem.jobs.table import Job
from unem.volumes.datasets import Dataset, get_dataset, import_dataset
from unem.volumes.sources import open_source
from unem.volumes.store import downsample, open_level
from unem.workspace import Workspace

pytestmark = pytest.mark.timeout(60)
SHAPE = (5, 600, 530)  # three pyramid levels; z stays whole (anisotropic voxels)


@pytest.fixture
def dataset(workspace: Workspace, tmp_path: Path) -> Dataset:
    rng = np.random.default_rng(3)
    image = ndimage.gaussian_filter(rng.random(SHAPE), 2) * 255 / 0.6
    path = tmp_path / "image.npy"
    np.save(path, np.clip(image, 0, 255).astype(np.uint8))
    return import_dataset(workspace, "cells", {"image": open_source(path)}, (40.0, 4.0, 4.0))


@pytest.fixture
def runner(workspace: Workspace) -> Iterator[JobRunner]:
    runner = JobRunner(workspace)
    runner.start()
    yield runner
    runner.stop()


def run(runner: JobRunner, kind: str, **options: object) -> Job:
    job = runner.submit(kind, options, "admin")
    done = wait_for(lambda: (j := runner.get(job.id)).state not in ("queued", "running") and j)
    assert done.state == "done", (done.error, done.last_lines)
    return done


def test_the_pyramid_job_rebuilds_coarse_levels_from_level_0(
    runner: JobRunner, workspace: Workspace, dataset: Dataset
) -> None:
    layer = dataset.layer("image")
    assert len(layer.levels) == 3
    # Another program changes level 0; the coarse levels are now stale.
    changed = np.full(SHAPE[1:], 7, np.uint8)
    changed[100:300, 50:200] = 250
    open_level(layer.path, "0", mode="r+")[2] = changed
    before = np.asarray(open_level(layer.path, "1")[2])
    assert not np.array_equal(before, downsample([changed], labels=False))

    job = run(runner, "pyramid", dataset=dataset.id, layer="image")
    assert job.result == {"dataset": dataset.id, "layer": "image", "levels": 3}
    level1 = np.asarray(open_level(layer.path, "1"))
    level2 = np.asarray(open_level(layer.path, "2"))
    level0 = np.asarray(open_level(layer.path, "0"))
    assert np.array_equal(level0[2], changed)  # level 0 untouched
    for z in range(SHAPE[0]):
        assert np.array_equal(level1[z], downsample([level0[z]], labels=False))
        assert np.array_equal(level2[z], downsample([level1[z]], labels=False))
    assert job.metrics is not None and job.metrics["slices_per_second"] > 0
    assert "rebuilding the pyramid" in (workspace.root / job.log_path).read_text()


def test_the_gaussian_job_adds_a_registered_layer_equal_to_whole_volume_smoothing(
    runner: JobRunner, workspace: Workspace, dataset: Dataset
) -> None:
    job = run(runner, "gaussian", dataset=dataset.id, layer="image", sigma=1.5, sigma_z=0.8)
    assert job.result == {"dataset": dataset.id, "layer": "image-gaussian", "dtype": "uint8"}
    smoothed = get_dataset(workspace, dataset.id).layer("image-gaussian")
    assert (smoothed.kind, smoothed.dtype, len(smoothed.levels)) == ("image", "uint8", 3)
    image = np.asarray(open_level(dataset.layer("image").path, "0"), np.float32)
    expected = ndimage.gaussian_filter(image, (0.8, 1.5, 1.5), mode="reflect", truncate=4.0)
    expected = np.clip(np.rint(expected), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(open_level(smoothed.path, "0")), expected)
    row = workspace.db["layers"].get((dataset.id, "image-gaussian"))
    assert json.loads(row["levels"])[1]["shape"] == [5, 300, 265]
    assert row["source"] == "gaussian(sigma=1.5, sigma_z=0.8) of image"
    grown = get_dataset(workspace, dataset.id).size_bytes
    assert grown > dataset.size_bytes

    with pytest.raises(BadInput, match="already has a layer 'image-gaussian'"):
        runner.submit("gaussian", {"dataset": dataset.id, "sigma": 1.0}, "admin")
    run(runner, "gaussian", dataset=dataset.id, sigma=1.0, overwrite=True)
    assert get_dataset(workspace, dataset.id).size_bytes == pytest.approx(grown, rel=0.2)


def test_gaussian_blocks_match_one_pass_and_refuse_what_cannot_work(
    workspace: Workspace, dataset: Dataset
) -> None:
    import unem.filters.gaussian as gaussian

    original = gaussian.BLOCK_SLICES
    gaussian.BLOCK_SLICES = 2  # several blocks with margins, on 5 slices
    try:
        layer = gaussian_layer(workspace, dataset.id, "image", "smooth", 1.0, 1.2)
    finally:
        gaussian.BLOCK_SLICES = original
    image = np.asarray(open_level(dataset.layer("image").path, "0"), np.float32)
    expected = ndimage.gaussian_filter(image, (1.2, 1.0, 1.0), mode="reflect", truncate=4.0)
    assert np.array_equal(np.asarray(open_level(layer.path, "0")),
                          np.clip(np.rint(expected), 0, 255).astype(np.uint8))  # fmt: skip
    for output, message in [("segmentation", "dataset's own"), ("Bad Name", "lower-case"),
                            ("smooth", "already has")]:  # fmt: skip
        with pytest.raises(BadInput, match=message):
            gaussian_layer(workspace, dataset.id, "image", output, 1.0)
    with pytest.raises(BadInput, match="labels"):
        gaussian_layer(workspace, dataset.id, "segmentation", "x", 1.0)


def test_discovery_lists_builtins_plugins_and_broken_plugins(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no luck')\n")
    (tmp_path / "nohook.py").write_text("X = 1\n")
    (tmp_path / "twice.py").write_text(
        "from unem.jobs.builtin import register_job_kinds\n"  # registers "pyramid" again
    )
    registry = discover_kinds([TEST_PLUGIN, tmp_path])
    assert list(registry.kinds)[:2] == ["pyramid", "gaussian"]
    assert {"test-steps", "test-crash", "test-hang", "test-gpu"} <= set(registry.kinds)
    errors = {Path(b.source).name: b.error for b in registry.broken}
    assert errors["broken.py"] == "RuntimeError: no luck"
    assert "register_job_kinds" in errors["nohook.py"]
    assert "already registered" in errors["twice.py"]
    schema = registry.get("gaussian").to_json()["schema"]
    assert schema["properties"]["dataset"]["x-unem-choices"] == "dataset"
    assert schema["required"] == ["dataset"]
    assert registry.get("test-gpu").resource == "accelerator"
