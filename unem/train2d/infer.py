"""Inference of a trained 2D CNN on a stack: overlapping tiles, blended without seams.

Each slice is cut into tiles of `tile_size` that overlap by `overlap` of a tile. A tile's
prediction is weighted by a smooth window that falls to zero over the outer `margin`
pixels of each side, except on the sides touching the image border, so a pixel's value
comes from tiles in which it lies far from the tile's edge: where the model's receptive
field fits inside the margin, tiled and whole-image predictions agree. Tile corners sit
on multiples of the model's `size_multiple` (pooling grids line up the same way as on a
whole image).

Slices are predicted one by one and streamed into the new layer: memory holds one slice,
whatever the stack's depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unem.errors import BadInput
from unem.models.spec import ModelSpec
from unem.progress import Progress, no_progress
from unem.train2d.data import parse_slices
from unem.train2d.losses import probabilities
from unem.train2d.options import InferOptions
from unem.train2d.trained import TrainedModel, get_trained_model
from unem.volumes.datasets import Layer, get_dataset
from unem.volumes.layers import add_layer, check_new_layer
from unem.volumes.store import open_level
from unem.workspace import Workspace

Predict = Callable[[np.ndarray], np.ndarray]  # (b, h, w, c) float32 → (b, h, w, k) logits


@dataclass(frozen=True)
class Tiling:
    """Where tiles of side `tile` go on an image of `height` × `width`."""

    height: int
    width: int
    tile: int
    step: int
    margin: int

    def starts(self, length: int) -> list[int]:
        if length <= self.tile:
            return [0]
        starts = list(range(0, length - self.tile, self.step))
        return [*starts, length - self.tile]

    def corners(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.starts(self.height) for x in self.starts(self.width)]


def plan_tiling(height: int, width: int, tile: int, overlap: float, multiple: int) -> Tiling:
    """Tiles of side `tile` (a multiple of `multiple`) stepping by a multiple of it."""
    tile = max(multiple, tile // multiple * multiple)
    step = max(multiple, int(tile * (1 - overlap)) // multiple * multiple)
    margin = (tile - step) // 2
    return Tiling(height, width, tile, step, margin)


def window(length: int, margin: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights: a smooth bump, zero over `margin` at the inner ends."""
    position = np.arange(length, dtype=np.float64) + 0.5
    centre, sigma = length / 2, length / 4
    weights = np.exp(-0.5 * ((position - centre) / sigma) ** 2)
    if margin and not at_start:
        weights[:margin] = 0
    if margin and not at_end:
        weights[length - margin :] = 0
    return np.maximum(weights, 1e-6 if not margin else 0)


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad (h, w, c) at the bottom and right up to at least `height` × `width`."""
    pad_y, pad_x = max(height - image.shape[0], 0), max(width - image.shape[1], 0)
    if not (pad_y or pad_x):
        return image
    mode = "reflect" if image.shape[0] > pad_y and image.shape[1] > pad_x else "symmetric"
    padded: np.ndarray = np.pad(image, ((0, pad_y), (0, pad_x), (0, 0)), mode=mode)  # type: ignore[call-overload]
    return padded


def predict_tiled(
    predict: Predict,
    image: np.ndarray,
    tile_size: int,
    overlap: float,
    batch_size: int,
    multiple: int = 1,
) -> np.ndarray:
    """Logits (h, w, k) of an image (h, w, c) float32 from overlapping blended tiles.

    Images smaller than a tile, or not a multiple of `multiple`, are reflect-padded and
    the result cropped back.
    """
    height, width = image.shape[:2]
    size = max(tile_size, multiple)
    padded_h = max(size, math.ceil(height / multiple) * multiple)
    padded_w = max(size, math.ceil(width / multiple) * multiple)
    padded = pad_to(image, padded_h, padded_w)
    tiling = plan_tiling(padded_h, padded_w, min(size, padded_h, padded_w), overlap, multiple)
    corners = tiling.corners()
    total: np.ndarray | None = None
    weight_sum = np.zeros((padded_h, padded_w, 1), dtype=np.float64)
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        tiles = np.stack([padded[y : y + tiling.tile, x : x + tiling.tile] for y, x in batch])
        logits = np.asarray(predict(tiles), dtype=np.float64)
        if total is None:
            total = np.zeros((padded_h, padded_w, logits.shape[-1]), dtype=np.float64)
        for (y, x), out in zip(batch, logits, strict=True):
            weights = _tile_weights(tiling, y, x)
            total[y : y + tiling.tile, x : x + tiling.tile] += out * weights
            weight_sum[y : y + tiling.tile, x : x + tiling.tile] += weights
    assert total is not None
    blended: np.ndarray = (total / np.maximum(weight_sum, 1e-12))[:height, :width]
    return blended.astype(np.float32)


def _tile_weights(tiling: Tiling, y: int, x: int) -> np.ndarray:
    t, m = tiling.tile, tiling.margin
    wy = window(t, m, y == 0, y + t >= tiling.height)
    wx = window(t, m, x == 0, x + t >= tiling.width)
    return np.outer(wy, wx)[..., None]


class LoadedModel:
    """A trained model, loaded once, as a function from images to class probabilities."""

    def __init__(self, trained: TrainedModel, spec: ModelSpec | None) -> None:
        import keras

        self.trained = trained
        self.model = keras.models.load_model(trained.keras_path, compile=False)
        # The spec's hooks, when its plugin is still installed (the weights need no code).
        self.spec = spec
        self.spec_options = spec.validate(trained.info.get("model_options", {})) if spec else None
        self.channels = trained.channels or int(self.model.input_shape[-1])
        self.n_classes = trained.n_classes or int(self.model.output_shape[-1])

    def logits(self, images: np.ndarray) -> np.ndarray:
        if self.spec is not None:
            images = self.spec.preprocess(images, self.spec_options)
        return np.asarray(self.model.predict_on_batch(images))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        probs = probabilities(logits, self.trained.activation)
        if self.spec is not None:
            probs = self.spec.postprocess(probs[None], self.spec_options)[0]
        return probs


def slice_input(source: Any, z: int, channels: int, scale: float) -> np.ndarray:
    """Slice `z` as (h, w, channels) float32 in [0, 1]; 3 channels: z-1, z, z+1 (clamped)."""
    depth = int(source.shape[0])
    planes = [z] if channels == 1 else [max(z - 1, 0), z, min(z + 1, depth - 1)]
    stack = np.stack([np.asarray(source[p], dtype=np.float32) for p in planes], axis=-1)
    clipped: np.ndarray = np.clip(stack / scale, 0.0, 1.0)
    return clipped


def image_scale(trained: TrainedModel, layer: Layer) -> float:
    """What raw values are divided by: what training used, else the dtype's range."""
    if "input_scale" in trained.info:
        return float(trained.info["input_scale"])
    return {"uint16": 65535.0, "float32": 1.0}.get(layer.dtype, 255.0)


def predicted_slices(
    loaded: LoadedModel, source: Any, scale: float, options: InferOptions, wanted: Sequence[int]
) -> Iterator[np.ndarray]:
    """Every slice of the output layer, uint8 probability × 255 of `output_class`; slices
    not in `wanted` are left at 0."""
    depth, height, width = (int(n) for n in source.shape)
    chosen = set(wanted)
    for z in range(depth):
        if z not in chosen:
            yield np.zeros((height, width), dtype=np.uint8)
            continue
        image = slice_input(source, z, loaded.channels, scale)
        logits = predict_tiled(
            loaded.logits,
            image,
            options.tile_size,
            options.overlap,
            options.batch_size,
            loaded.trained.size_multiple,
        )
        probs = loaded.probabilities(logits)
        yield np.rint(np.clip(probs[..., options.output_class], 0, 1) * 255).astype(np.uint8)


def check_inference(ws: Workspace, options: InferOptions) -> tuple[TrainedModel, Layer]:
    """The model and image layer to use, or a clear error before any work starts."""
    trained = get_trained_model(ws, options.model)
    layer = get_dataset(ws, options.dataset).layer(options.image_layer)
    if layer.kind not in ("image", "prediction"):
        raise BadInput(f"{options.image_layer} holds labels; predict an image layer.")
    if trained.n_classes is not None and options.output_class >= trained.n_classes:
        raise BadInput(
            f"The model tells {trained.n_classes} classes apart; "
            f"output_class must be below {trained.n_classes}."
        )
    check_new_layer(ws, options.dataset, options.output, options.overwrite)
    parse_slices(options.slices, layer.shape[0])
    return trained, layer


def infer_layer(
    ws: Workspace,
    options: InferOptions,
    spec: ModelSpec | None = None,
    progress: Progress = no_progress,
) -> Layer:
    """Predict the image layer of a dataset into a new prediction layer."""
    trained, layer = check_inference(ws, options)
    loaded = LoadedModel(trained, spec)
    if options.output_class >= loaded.n_classes:
        raise BadInput(f"The model has {loaded.n_classes} outputs; choose output_class below it.")
    source = open_level(layer.path, layer.levels[0].path)
    wanted = parse_slices(options.slices, layer.shape[0])
    planes = predicted_slices(loaded, source, image_scale(trained, layer), options, wanted)
    description = f"{trained.name} (class {options.output_class}) on {options.image_layer}"
    return add_layer(
        ws,
        options.dataset,
        options.output,
        "prediction",
        "uint8",
        planes,
        description,
        options.overwrite,
        progress,
    )
