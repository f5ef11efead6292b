"""Inference of a trained 2D CNN on a stack: overlapping tiles, blended without seams.

Each slice is cut into the fewest tiles of about `tile_size` that overlap by at least
`overlap` of a tile (see `plan_axis`). A tile's
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
from unem.train2d.resolution import enlarge_probabilities, shrink_images
from unem.train2d.trained import TrainedModel, get_trained_model
from unem.volumes.datasets import Layer, get_dataset
from unem.volumes.layers import add_layer, check_new_layer
from unem.volumes.store import open_level
from unem.workspace import Workspace

Predict = Callable[[np.ndarray], np.ndarray]  # (b, h, w, c) float32 → (b, h, w, k) logits


@dataclass(frozen=True)
class AxisTiles:
    """Where tiles go along one axis: `count` tiles of `tile` pixels, `step` apart, the last
    one flush with the end."""

    length: int
    tile: int
    step: int

    def starts(self) -> list[int]:
        if self.length <= self.tile:
            return [0]
        return [*range(0, self.length - self.tile, self.step), self.length - self.tile]

    @property
    def margin(self) -> int:
        """The band at a tile's inner edges whose weight is zero: half the narrowest overlap."""
        return 0 if self.length <= self.tile else (self.tile - self.step) // 2


@dataclass(frozen=True)
class Tiling:
    """Where tiles of `rows.tile` × `cols.tile` go on an image."""

    rows: AxisTiles
    cols: AxisTiles

    def corners(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.rows.starts() for x in self.cols.starts()]

    @property
    def predicted_pixels(self) -> int:
        return len(self.corners()) * self.rows.tile * self.cols.tile


# A tile may grow to this share of `tile_size` when that spares a whole row of tiles: a
# 1024-pixel side takes two 560-pixel tiles with 1/8 overlap instead of three of 512.
TILE_GROWTH = 1.25


def plan_axis(length: int, tile: int, overlap: float, multiple: int) -> AxisTiles:
    """Tiles (sides multiples of `multiple`, no larger than `TILE_GROWTH` × `tile`) that
    cover `length` overlapping by at least `overlap` of a tile, predicting the fewest pixels.

    Fewer, larger tiles repeat fewer overlaps, but rounding sides to the pooling grid can
    make one more tile cheaper, so the first few feasible counts are compared.
    """
    largest = max(multiple, int(tile * TILE_GROWTH) // multiple * multiple)
    if length <= largest:
        return AxisTiles(length, length, length)
    fewest = next(
        n for n in range(2, length) if _smallest_side(length, n, overlap, multiple) <= largest
    )
    candidates = [
        (count * side, count, side)
        for count in range(fewest, fewest + 3)
        if (side := _smallest_side(length, count, overlap, multiple)) <= largest
    ]
    _, _, side = min(candidates)
    return AxisTiles(length, side, _step(side, overlap, multiple))


def _smallest_side(length: int, count: int, overlap: float, multiple: int) -> int:
    """The smallest tile side for which `count` tiles cover `length`: n tiles of side t
    stepping by s cover t + (n - 1)·s pixels."""
    side = _round_up(math.ceil(length / (count - (count - 1) * overlap)), multiple)
    while side + (count - 1) * _step(side, overlap, multiple) < length:
        side += multiple
    return side


def _step(tile: int, overlap: float, multiple: int) -> int:
    return max(multiple, int(tile * (1 - overlap)) // multiple * multiple)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_tiling(height: int, width: int, tile: int, overlap: float, multiple: int) -> Tiling:
    """Tiles for an image whose sides are multiples of `multiple`."""
    return Tiling(
        plan_axis(height, tile, overlap, multiple), plan_axis(width, tile, overlap, multiple)
    )


def window(length: int, margin: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights: a smooth bump, zero over `margin` at the inner ends."""
    position = np.arange(length, dtype=np.float32) + 0.5
    centre, sigma = length / 2, length / 4
    weights = np.exp(-0.5 * ((position - centre) / sigma) ** 2)
    if margin and not at_start:
        weights[:margin] = 0
    if margin and not at_end:
        weights[length - margin :] = 0
    floored: np.ndarray = np.maximum(weights, 1e-6 if not margin else 0)
    return floored


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
    padded_h = math.ceil(height / multiple) * multiple
    padded_w = math.ceil(width / multiple) * multiple
    padded = pad_to(image, padded_h, padded_w)
    tiling = plan_tiling(padded_h, padded_w, max(tile_size, multiple), overlap, multiple)
    corners = tiling.corners()
    tile_h, tile_w = tiling.rows.tile, tiling.cols.tile
    if len(corners) == 1:  # one tile: its window's weights would cancel out
        whole: np.ndarray = np.asarray(predict(padded[None]), dtype=np.float32)[0]
        return whole[:height, :width]
    row_windows = {y: _axis_window(tiling.rows, y) for y in tiling.rows.starts()}
    col_windows = {x: _axis_window(tiling.cols, x) for x in tiling.cols.starts()}
    total: np.ndarray | None = None
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        tiles = np.stack([padded[y : y + tile_h, x : x + tile_w] for y, x in batch])
        logits = np.asarray(predict(tiles), dtype=np.float32)
        if total is None:
            total = np.zeros((padded_h, padded_w, logits.shape[-1]), dtype=np.float32)
        for (y, x), out in zip(batch, logits, strict=True):
            weights = np.outer(row_windows[y], col_windows[x])[..., None]
            total[y : y + tile_h, x : x + tile_w] += out * weights
    assert total is not None
    # Weights are separable and tiles sit on a grid, so their sum is the outer product of
    # the per-axis sums: no second full-size accumulation.
    row_sum = _axis_sum(row_windows, tile_h, padded_h)
    col_sum = _axis_sum(col_windows, tile_w, padded_w)
    total /= np.maximum(np.outer(row_sum, col_sum), 1e-12)[..., None]
    return total[:height, :width]


def _axis_sum(windows: dict[int, np.ndarray], tile: int, length: int) -> np.ndarray:
    summed = np.zeros(length, dtype=np.float32)
    for start, weights in windows.items():
        summed[start : start + tile] += weights
    return summed


def _axis_window(axis: AxisTiles, start: int) -> np.ndarray:
    return window(axis.tile, axis.margin, start == 0, start + axis.tile >= axis.length)


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


@dataclass(frozen=True)
class Mirror:
    """One symmetry of the square grid: an optional transpose, then optional flips."""

    transpose: bool
    flip_rows: bool
    flip_cols: bool

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(h, w, c) → the mirrored image, contiguous (the model wants a plain array)."""
        turned = image.swapaxes(0, 1) if self.transpose else image
        return np.ascontiguousarray(self._flip(turned))

    def undo(self, image: np.ndarray) -> np.ndarray:
        """A prediction of the mirrored image → its place on the original grid."""
        flipped = self._flip(image)
        return flipped.swapaxes(0, 1) if self.transpose else flipped

    def _flip(self, image: np.ndarray) -> np.ndarray:
        if self.flip_rows:
            image = image[::-1]
        return image[:, ::-1] if self.flip_cols else image


def mirrors(augmentation: str) -> list[Mirror]:
    """The copies a slice is predicted as: itself only, 4 flips, or all 8 dihedral ones."""
    transposes = (False, True) if augmentation == "dihedral" else (False,)
    flips = (False,) if augmentation == "none" else (False, True)
    return [Mirror(t, r, c) for t in transposes for r in flips for c in flips]


def predict_slice(loaded: LoadedModel, image: np.ndarray, options: InferOptions) -> np.ndarray:
    """Class probabilities (h, w, k) of one slice (h, w, c), averaged over its mirrors.

    Probabilities, not logits, are averaged: one confident copy must not outvote the rest.
    A model trained on shrunk images predicts a shrunk copy, enlarged back.
    """
    factor = loaded.trained.downsample
    if factor > 1:
        height, width = image.shape[:2]
        shrunk = shrink_images(np.moveaxis(image, -1, 0), factor)
        probs = _predict_mirrors(loaded, np.moveaxis(shrunk, 0, -1), options)
        return enlarge_probabilities(probs, factor, height, width)
    return _predict_mirrors(loaded, image, options)


def _predict_mirrors(loaded: LoadedModel, image: np.ndarray, options: InferOptions) -> np.ndarray:
    chosen = mirrors(options.test_time_augmentation)
    total: np.ndarray | None = None
    for mirror in chosen:
        logits = predict_tiled(
            loaded.logits,
            mirror.apply(image),
            options.tile_size,
            options.overlap,
            options.batch_size,
            loaded.trained.size_multiple,
        )
        probs = mirror.undo(loaded.probabilities(logits))
        if total is None:  # a fresh array of this slice's: summed into in place, no copy
            total = probs.astype(np.float32, copy=False)
        else:
            total += probs
    assert total is not None
    if len(chosen) > 1:
        total /= len(chosen)
    return total


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
        probs = predict_slice(loaded, slice_input(source, z, loaded.channels, scale), options)
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
