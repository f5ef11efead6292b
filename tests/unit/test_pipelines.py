"""Pipelines: JSON round trips, clear errors naming the step and field, block-wise and
streamed 3D steps equal to the whole-volume result, saved pipelines, previews, and a
pipeline run on the Gerhard et al. stack producing a segmentation layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from unem.errors import BadInput, NotFound
from unem.filters import runner
from unem.filters.catalog import get_filter
from unem.filters.layer_runs import check_run, preview_slice, run_pipeline_layer
from unem.filters.pipeline import Pipeline, load_pipeline, make_pipeline
from unem.filters.runner import run_array
from unem.filters.saved import delete_saved, get_saved, list_saved, save_pipeline
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import array_source
from unem.volumes.store import open_level
from unem.workspace import Workspace

GERHARD = "drosophila_vnc_gerhard2013_stack1"
CELLS = [  # membranes are dark: smooth, take the bright class, clean it, label, link
    {"filter": "gaussian", "options": {"sigma": 2}},
    {"filter": "otsu", "options": {}},
    {"filter": "open", "options": {"radius": 2}},
    {"filter": "remove-small-objects", "options": {"min_size": 200}},
    {"filter": "label", "options": {}},
    {"filter": "link-overlap", "options": {"min_overlap": 0.3}},
    {"filter": "size-filter", "options": {"dims": "3d", "min_size": 500}},
]
SMALL = {"slab_voxels": 3 * 40 * 50, "block_voxels": 5 * 16 * 16, "tile": 16}


def volume(seed: int = 0, shape: tuple[int, int, int] = (14, 40, 50)) -> np.ndarray:
    from scipy import ndimage

    noise = np.random.default_rng(seed).random(shape)
    smooth = ndimage.gaussian_filter(noise, 2)
    return np.rint(255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)


def test_a_pipeline_round_trips_through_json() -> None:
    pipeline = make_pipeline(CELLS, "cells", "cells of a membrane image")
    text = json.dumps(pipeline.to_json())
    again = load_pipeline(json.loads(text))
    assert again == pipeline and again.to_json() == pipeline.to_json()
    assert again.to_json()["steps"][0] == {"filter": "gaussian",
                                            "options": {"sigma": 2.0, "sigma_z": 0.0}}  # fmt: skip
    minimal = load_pipeline({"steps": [{"filter": "invert"}]})  # format, version, options: defaults
    assert (
        minimal.to_json()["format"] == "unem-pipeline"
        and minimal.steps[0].to_json()["options"] == {}
    )


@pytest.mark.parametrize(
    ("steps", "message", "field"),
    [
        ([{"filter": "gaussian"}, {"filter": "median", "options": {"size": 99}}],
         "Step 2 (median): size: Input should be less than or equal to 25", "size"),
        ([{"filter": "otsu", "options": {"dims": "4d"}}], "Step 1 (otsu): dims:", "dims"),
        ([{"filter": "erode", "options": {"radius": 1, "colour": "red"}}],
         "Step 1 (erode): colour: Extra inputs are not permitted", "colour"),
        ([{"filter": "watershed", "options": {"threshold": "high"}}],
         "Step 1 (watershed): threshold: Input should be a valid number", "threshold"),
    ],
)  # fmt: skip
def test_bad_parameters_name_the_step_and_the_field(
    steps: list[dict[str, Any]], message: str, field: str
) -> None:
    with pytest.raises(BadInput) as error:
        make_pipeline(steps)
    assert message in error.value.message
    problem = error.value.detail[0]
    assert problem["field"] == field and problem["step"] == len(steps)


def test_malformed_pipelines_are_refused_clearly() -> None:
    cases = [
        ({"steps": [{"filter": "sharpen"}]}, "Step 1: Unknown filter 'sharpen'"),
        ({"steps": [{"name": "gaussian"}]}, "Step 1: a step is an object with a filter name"),
        ({"steps": [{"filter": "gaussian", "options": [1]}]}, "options must be an object"),
        ({"steps": "gaussian"}, "steps must be a list"),
        ({"steps": [], "colour": 1}, "Unknown pipeline keys: colour"),
        ({"format": "other", "steps": []}, "Not a unem-pipeline version 1 file"),
        ([1, 2], "A pipeline is a JSON object"),
    ]
    for data, message in cases:
        with pytest.raises(BadInput, match=message):
            load_pipeline(data)


def test_the_kinds_are_followed_through_the_steps() -> None:
    pipeline = make_pipeline(CELLS)
    assert pipeline.kinds("image") == ["image", "mask", "mask", "mask", "labels", "labels",
                                       "labels"]  # fmt: skip
    with pytest.raises(
        BadInput, match=r"Step 1 \(label\) takes labels or a mask, but is given an image"
    ):
        make_pipeline([{"filter": "label"}]).kinds("image")
    with pytest.raises(BadInput, match=r"Step 2 \(gaussian\) takes an image or a prediction, but"):
        make_pipeline([{"filter": "threshold"}, {"filter": "gaussian"}]).kinds("prediction")


@pytest.mark.parametrize(
    ("name", "options", "kind"),
    [
        ("gaussian", {"sigma": 1.5, "sigma_z": 1.2}, "image"),
        ("median", {"size": 3, "size_z": 3}, "image"),
        ("unsharp-mask", {"radius": 1.0, "radius_z": 0.5}, "prediction"),
        ("dilate", {"radius": 2, "radius_z": 1}, "mask"),
        ("close", {"radius": 1, "radius_z": 1, "shape": "square"}, "image"),
    ],
)
def test_block_wise_3d_steps_with_a_halo_equal_the_whole_volume(
    name: str, options: dict[str, Any], kind: str
) -> None:
    data = volume(1)
    given = {"image": data, "prediction": (data / 255).astype(np.float32), "mask": data > 128}[kind]
    step = make_pipeline([{"filter": name, "options": options}])
    assert step.steps[0].strategy == "block"
    item = get_filter(name)
    whole = item.apply(given, item.validate(options))
    blocks = run_array(step, given, **SMALL)  # 3 slices × 16 × 16 per block, many blocks
    assert np.array_equal(blocks, whole)
    no_halo = step.steps[0].filter.halo
    assert no_halo is not None and max(no_halo(step.steps[0].options)) > 0


@pytest.mark.parametrize(
    ("name", "options", "kind"),
    [
        ("label", {"dims": "3d", "connectivity": "faces"}, "mask"),
        ("label", {"dims": "3d", "connectivity": "corners"}, "mask"),
        ("remove-small-objects", {"dims": "3d", "min_size": 40}, "mask"),
        ("otsu", {"dims": "3d"}, "image"),
        ("otsu", {"dims": "3d", "below": True}, "prediction"),
        ("normalise", {"dims": "3d", "low": 2, "high": 98}, "image"),
        ("size-filter", {"dims": "3d", "min_size": 30, "max_size": 400}, "labels"),
        ("relabel", {}, "labels"),
    ],
)
def test_streamed_3d_steps_equal_the_whole_volume(
    name: str, options: dict[str, Any], kind: str
) -> None:
    from scipy import ndimage

    data = volume(2)
    labels = ndimage.label(data > 140)[0].astype(np.uint32) * 3
    given = {"image": data, "prediction": (data / 255).astype(np.float32), "mask": data > 140,
             "labels": labels}[kind]  # fmt: skip
    pipeline = make_pipeline([{"filter": name, "options": options}])
    assert pipeline.steps[0].strategy == "stream"
    item = get_filter(name)
    assert np.array_equal(
        run_array(pipeline, given, **SMALL), item.apply(given, item.validate(options))
    )


def test_2d_steps_stream_and_feed_3d_steps_through_a_temporary_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores: list[tuple[int, ...]] = []
    store = runner.RunContext.store

    def counted(self: runner.RunContext, shape: tuple[int, ...], dtype: str) -> Any:
        stores.append(shape)
        return store(self, shape, dtype)

    monkeypatch.setattr(runner.RunContext, "store", counted)
    data = volume(3)
    steps = [{"filter": "median", "options": {"size": 3}},
             {"filter": "gaussian", "options": {"sigma": 1, "sigma_z": 1}},
             {"filter": "threshold", "options": {"threshold": 0.5}},
             {"filter": "label", "options": {"dims": "3d"}}]  # fmt: skip
    pipeline = make_pipeline(steps)
    assert [s.strategy for s in pipeline.steps] == ["slice", "block", "slice", "stream"]
    expected = data
    for step in pipeline.steps[:1]:
        expected = np.stack([step.filter.apply(p, step.options) for p in expected])
    for step in pipeline.steps[1:]:
        expected = step.filter.apply(expected, step.options)
    assert np.array_equal(run_array(pipeline, data, tmp_path, **SMALL), expected)
    assert len(stores) >= 3  # the 2D results, and the slabs of the stitched labelling
    assert list(tmp_path.iterdir()) == []  # the temporary stores are gone


def test_a_whole_volume_step_refuses_what_would_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "WHOLE_BYTES_PER_VOXEL", 2**40)
    pipeline = make_pipeline([{"filter": "watershed", "options": {"dims": "3d"}}])
    assert pipeline.steps[0].strategy == "whole"
    with pytest.raises(BadInput, match=r"whole-volume step needs about .* GiB"):
        run_array(pipeline, volume() > 128)


@pytest.fixture
def gerhard(workspace: Workspace, data: Path) -> str:
    """Six sections of the Gerhard et al. stack, 384² crops (4.6 nm pixels, 50 nm sections)."""
    raw = sorted((data / GERHARD / "raw").glob("*.tif"))[:6]
    stack = np.stack([tifffile.imread(p)[200:584, 300:684] for p in raw])
    return import_dataset(workspace, "gerhard", {"image": array_source(stack)}, (50, 4.6, 4.6)).id


def test_a_pipeline_on_the_gerhard_stack_produces_a_segmentation_layer(
    workspace: Workspace, gerhard: str
) -> None:
    steps: list[tuple[int, int]] = []
    pipeline = make_pipeline(CELLS, "cells")

    def progress(step: int, total: int, message: str = "") -> None:
        steps.append((step, total))

    layer = run_pipeline_layer(workspace, gerhard, "image", pipeline, "cells", progress=progress)
    assert (layer.kind, layer.dtype, layer.shape) == ("segmentation", "uint32", (6, 384, 384))
    labels = np.asarray(open_level(layer.path, "0")[:])
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    assert len(ids) >= 15 and sizes.min() >= 500  # cells, linked across sections
    per_section = sum(len(np.unique(labels[z][labels[z] > 0])) for z in range(6))
    assert per_section > 3 * len(ids)  # most 2D objects were linked to others
    spanning = [i for i in ids if all((labels[z] == i).any() for z in range(6))]
    assert len(spanning) >= 5  # objects that run through every section, one id each
    assert steps[-1][0] == steps[-1][1] and all(a <= b for a, b in steps)
    row = workspace.db["layers"].get((gerhard, "cells"))
    assert row["source"].startswith("pipeline cells [gaussian, otsu, open,")
    smoothed = run_pipeline_layer(workspace, gerhard, "image", make_pipeline(CELLS[:1]), "smooth")
    assert (smoothed.kind, smoothed.dtype) == ("image", "uint8")
    mask = run_pipeline_layer(workspace, gerhard, "image", make_pipeline(CELLS[:2]), "mask",
                              output_kind="prediction")  # fmt: skip
    values = np.unique(np.asarray(open_level(mask.path, "0")[2]))
    assert (mask.kind, mask.dtype, values.tolist()) == ("prediction", "uint8", [0, 255])


def test_runs_are_checked_before_they_start(workspace: Workspace, gerhard: str) -> None:
    labels = make_pipeline(CELLS)
    cases = [
        (("image", labels, "image"), "not the one filtered"),
        (("image", make_pipeline([]), "x"), "no step"),
        (("image", labels, "Bad Name"), "Layer name"),
        (("image", labels, "segmentation"), "dataset's own"),
        (("image", make_pipeline([{"filter": "label"}]), "x"), "takes labels or a mask"),
    ]
    for (layer, pipeline, output), message in cases:
        with pytest.raises(BadInput, match=message):
            check_run(workspace, gerhard, layer, pipeline, output)
    with pytest.raises(BadInput, match="labels, which can become a layer of kind segmentation"):
        check_run(workspace, gerhard, "image", labels, "x", output_kind="image")
    with pytest.raises(NotFound):
        check_run(workspace, gerhard, "nothing", labels, "x")


def test_the_preview_shows_the_leading_2d_steps(workspace: Workspace, gerhard: str) -> None:
    import io

    from PIL import Image

    pipeline = make_pipeline([*CELLS[:2], {"filter": "label", "options": {"dims": "3d"}}])
    shown = preview_slice(workspace, gerhard, "image", 3, pipeline)
    assert shown.applied == 2 and shown.kind == "mask" and "Step 3 (label)" in shown.note
    picture = np.asarray(Image.open(io.BytesIO(shown.png)))
    assert picture.shape == (384, 384) and set(np.unique(picture)) == {0, 255}
    labels = preview_slice(workspace, gerhard, "image", 3, make_pipeline(CELLS[:5]),
                           (10, 20, 110, 220))  # fmt: skip
    assert labels.box == (10, 20, 110, 220) and labels.kind == "labels"
    assert np.asarray(Image.open(io.BytesIO(labels.png))).shape == (100, 200, 3)
    with pytest.raises(BadInput, match="Slice 6 is outside"):
        preview_slice(workspace, gerhard, "image", 6, pipeline)


def test_saved_pipelines(workspace: Workspace) -> None:
    saved = save_pipeline(workspace, "cells", {"steps": CELLS, "description": "d"}, "alice")
    assert saved["name"] == "cells" and saved["saved_by"] == "alice"
    assert get_saved(workspace, "cells") == make_pipeline(CELLS, "cells", "d")
    assert [(p["name"], p["filters"][0]) for p in list_saved(workspace)] == [("cells", "gaussian")]
    with pytest.raises(BadInput, match="Step 1 \\(gaussian\\): sigma"):
        save_pipeline(
            workspace, "broken", {"steps": [{"filter": "gaussian", "options": {"sigma": -1}}]}
        )
    with pytest.raises(BadInput, match="Pipeline name"):
        save_pipeline(workspace, "../escape", {"steps": []})
    delete_saved(workspace, "cells")
    assert list_saved(workspace) == []
    with pytest.raises(NotFound):
        get_saved(workspace, "cells")
    assert isinstance(make_pipeline([]), Pipeline)
