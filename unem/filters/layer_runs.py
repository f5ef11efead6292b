"""Pipelines on the layers of a dataset: run one into a new layer, or preview one slice.

A layer is read as the data its kind holds (an image as stored, a prediction as float32
probabilities, a segmentation as labels); the result is written as a new layer of the
dataset, streamed slice by slice through the pyramid writer, in the dtype its kind
stores: images uint8/uint16 (float images such as distances rounded into uint16),
predictions uint8 (p × 255), segmentations uint32 (uint64 when the labels are).
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from unem.errors import BadInput
from unem.filters.pipeline import LAYER_DATA, Pipeline, output_layer_kind
from unem.filters.postprocess import probability
from unem.filters.runner import RunContext, run_steps
from unem.progress import Progress, no_progress
from unem.volumes.datasets import Layer, get_dataset
from unem.volumes.layers import add_layer, check_new_layer
from unem.volumes.store import open_level
from unem.workspace import Workspace

PREVIEW_EDGE = 1024  # a larger slice is previewed on a crop of this size (its centre)


class LayerVolume:
    """A layer's full-resolution array, read as the data its kind holds."""

    def __init__(self, layer: Layer) -> None:
        self.array = open_level(layer.path, layer.levels[0].path)
        self.shape = tuple(int(s) for s in self.array.shape)
        self.kind = LAYER_DATA[layer.kind]

    def __getitem__(self, key: Any) -> np.ndarray:
        data = np.asarray(self.array[key])
        return probability(data) if self.kind == "prediction" else data


@dataclass(frozen=True)
class RunPlan:
    """What a pipeline run on a layer will do, checked before it starts."""

    layer: Layer
    data_kind: str  # what the pipeline gives
    layer_kind: str  # the kind of the new layer


def check_run(
    ws: Workspace,
    dataset_id: str,
    layer_name: str,
    pipeline: Pipeline,
    output: str,
    output_kind: str = "auto",
    overwrite: bool = False,
) -> RunPlan:
    """The plan of a run, or BadInput (NotFound) saying why it cannot work."""
    layer = get_dataset(ws, dataset_id).layer(layer_name)
    if not pipeline.steps:
        raise BadInput("The pipeline has no step.")
    data_kind = pipeline.output_kind(LAYER_DATA[layer.kind])
    layer_kind = output_layer_kind(data_kind, output_kind)
    if output == layer_name:
        raise BadInput("The output must be a new layer, not the one filtered.")
    check_new_layer(ws, dataset_id, output, overwrite)
    return RunPlan(layer, data_kind, layer_kind)


def run_pipeline_layer(
    ws: Workspace,
    dataset_id: str,
    layer_name: str,
    pipeline: Pipeline,
    output: str,
    output_kind: str = "auto",
    overwrite: bool = False,
    progress: Progress = no_progress,
) -> Layer:
    """Run `pipeline` on a layer into the new layer `output` (see the module docstring)."""
    plan = check_run(ws, dataset_id, layer_name, pipeline, output, output_kind, overwrite)
    run = RunContext(ws.root / "tmp", progress)
    try:
        planes = run_steps(LayerVolume(plan.layer), pipeline.steps, run)
        dtype, converted = layer_planes(planes, plan.data_kind, plan.layer_kind)
        names = ", ".join(step.filter.name for step in pipeline.steps)
        source = f"pipeline {pipeline.name or '(unsaved)'} [{names}] of {layer_name}"
        return add_layer(ws, dataset_id, output, plan.layer_kind, dtype, converted, source,
                         overwrite)  # fmt: skip
    finally:
        run.close()


def layer_planes(
    planes: Iterator[np.ndarray], data_kind: str, layer_kind: str
) -> tuple[str, Iterator[np.ndarray]]:
    """The stored dtype of the result, and its slices converted to it."""
    first = next(planes)
    dtype = layer_dtype(first.dtype, data_kind, layer_kind)
    converted = (to_layer(p, data_kind, dtype) for p in itertools.chain([first], planes))
    return dtype, converted


def layer_dtype(found: np.dtype[Any], data_kind: str, layer_kind: str) -> str:
    if layer_kind == "segmentation":
        return "uint64" if found == np.uint64 else "uint32"
    if found == np.dtype(bool) or (data_kind == "prediction" and found.kind == "f"):
        return "uint8"
    if found.kind == "f":
        return "float32" if layer_kind == "prediction" else "uint16"
    return str(found) if found in (np.uint8, np.uint16) else "uint16"


def to_layer(plane: np.ndarray, data_kind: str, dtype: str) -> np.ndarray:
    """One result slice in the layer's dtype: masks 0/1 as labels, 0/255 as pictures;
    probabilities × 255; other values rounded and clipped to the dtype's range."""
    converted: np.ndarray
    if plane.dtype == bool:
        converted = plane.astype(dtype)
        if dtype not in ("uint32", "uint64"):
            converted *= 255  # a picture of the mask
    elif data_kind == "prediction" and plane.dtype.kind == "f":
        converted = np.rint(np.clip(plane, 0, 1) * 255).astype(np.uint8)
    elif dtype == "float32" or plane.dtype == np.dtype(dtype):
        converted = plane.astype(dtype, copy=False)
    else:
        info = np.iinfo(dtype)
        converted = np.clip(np.rint(plane), info.min, info.max).astype(dtype)
    return converted


# --- preview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    png: bytes
    applied: int  # steps shown (the leading 2D ones)
    kind: str  # the data shown
    note: str  # why the later steps are not shown, if they are not
    box: tuple[int, int, int, int]  # y0, x0, y1, x1 of the slice shown
    milliseconds: float


def preview_slice(
    ws: Workspace,
    dataset_id: str,
    layer_name: str,
    z: int,
    pipeline: Pipeline,
    box: tuple[int, int, int, int] | None = None,
) -> Preview:
    """Slice `z` of a layer (the crop `box`, at most PREVIEW_EDGE square) after the
    pipeline's leading 2D steps, as a PNG; 3D steps run only in the job."""
    started = time.perf_counter()
    layer = get_dataset(ws, dataset_id).layer(layer_name)
    volume = LayerVolume(layer)
    kinds = pipeline.kinds(volume.kind)
    if not 0 <= z < volume.shape[0]:
        raise BadInput(f"Slice {z} is outside the layer (0..{volume.shape[0] - 1}).")
    y0, x0, y1, x1 = preview_box(volume.shape[1:], box)
    plane, kind, applied, note = volume[z, y0:y1, x0:x1], volume.kind, 0, ""
    for step, after in zip(pipeline.steps, kinds, strict=True):
        if step.strategy != "slice":
            note = f"{step.label} works across slices: it runs in the job, not the preview."
            break
        plane, kind, applied = step.filter.apply(plane, step.options), after, applied + 1
    png = render_png(plane, kind)
    elapsed = (time.perf_counter() - started) * 1000
    return Preview(png, applied, kind, note, (y0, x0, y1, x1), elapsed)


def preview_box(
    shape: tuple[int, ...], box: tuple[int, int, int, int] | None
) -> tuple[int, int, int, int]:
    """The crop previewed: `box` clipped to the slice, else its centre; at most
    PREVIEW_EDGE on a side."""
    height, width = int(shape[0]), int(shape[1])
    if box is None:
        y0, x0 = max(0, (height - PREVIEW_EDGE) // 2), max(0, (width - PREVIEW_EDGE) // 2)
        return y0, x0, min(height, y0 + PREVIEW_EDGE), min(width, x0 + PREVIEW_EDGE)
    y0, x0 = min(max(box[0], 0), height - 1), min(max(box[1], 0), width - 1)
    y1 = min(max(box[2], y0 + 1), height, y0 + PREVIEW_EDGE)
    x1 = min(max(box[3], x0 + 1), width, x0 + PREVIEW_EDGE)
    return y0, x0, y1, x1


def render_png(plane: np.ndarray, kind: str) -> bytes:
    """A slice as people see it: grey images (16-bit and floats stretched), probabilities
    × 255, masks white, labels in their stable colours."""
    from PIL import Image

    from unem.volumes.export import label_colours
    from unem.volumes.render import to_uint8

    if kind == "labels":
        picture = label_colours(plane)
    elif plane.dtype == bool:
        picture = plane.astype(np.uint8) * 255
    elif kind == "prediction":
        picture = np.rint(np.clip(plane, 0, 1) * 255).astype(np.uint8)
    else:
        picture = to_uint8(plane)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
