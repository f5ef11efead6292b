"""Tiles for the viewer: one 512×512 chunk of a pyramid level, encoded for the browser.

Image tiles are JPEG, PNG or WebP. Label tiles are the raw fragment ids (little-endian
uint32, or uint64 for 64-bit layers), deflate-compressed: the browser colours them through
the fragment → segment mapping, so a merge repaints without fetching a tile again.
"""

from __future__ import annotations

import functools
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unem.errors import BadInput, NotFound
from unem.volumes.datasets import Layer
from unem.volumes.sources import pillow_image
from unem.volumes.store import LABEL_KINDS, TILE, open_level

IMAGE_FORMATS = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@dataclass(frozen=True)
class TileAddress:
    level: int
    z: int
    row: int
    col: int


def tile_slices(layer: Layer, address: TileAddress) -> tuple[int, slice, slice]:
    """The level's z index and y/x ranges a tile covers; NotFound outside the volume."""
    if not 0 <= address.level < len(layer.levels):
        raise NotFound(f"Layer {layer.name} has no level {address.level}.")
    level = layer.levels[address.level]
    depth, height, width = level.shape
    if not (
        0 <= address.z < depth
        and 0 <= address.row * TILE < height
        and 0 <= address.col * TILE < width
    ):
        raise NotFound("No such tile.")
    y0, x0 = address.row * TILE, address.col * TILE
    return address.z, slice(y0, min(y0 + TILE, height)), slice(x0, min(x0 + TILE, width))


@functools.lru_cache(maxsize=256)
def _level_for_reading(path: str, level: str, shape: tuple[int, int, int], dtype: str) -> Any:
    """An open level, kept: reopening parses its metadata again (~1 ms a tile). Chunks are
    still read fresh each time, so edits show at once. Shape and dtype are in the key so a
    dataset re-created under the same name never gets a stale handle."""
    return open_level(Path(path), level)


def read_tile(layer: Layer, address: TileAddress) -> np.ndarray:
    z, ys, xs = tile_slices(layer, address)
    level = layer.levels[address.level]
    array = _level_for_reading(str(layer.path), level.path, level.shape, layer.dtype)
    return np.asarray(array[z, ys, xs])


@functools.lru_cache(maxsize=64)
def display_range(path: str, level: str) -> tuple[float, float]:
    """The 0.5–99.5 % intensity range of a whole layer (read from its coarsest level), so
    16-bit and float tiles share one contrast instead of each stretching its own."""
    sample = np.asarray(open_level(Path(path), level)[...])
    low, high = np.percentile(sample, (0.5, 99.5))
    return float(low), float(high)


def to_display(tile: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    if tile.dtype == np.uint8:
        return tile
    low, high = value_range
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled: np.ndarray = np.clip((tile.astype(np.float32) - low) * scale, 0, 255)
    return scaled.astype(np.uint8)


def prediction_to_display(tile: np.ndarray) -> np.ndarray:
    """A probability tile in 8 bits on a fixed scale (never stretched, so 0.5 always looks
    the same): uint8 as stored, uint16 / 257, floats (probabilities) × 255."""
    if tile.dtype == np.uint8:
        return tile
    if tile.dtype == np.uint16:
        scaled = (tile.astype(np.uint32) + 128) // 257
    else:
        scaled = np.rint(np.clip(np.nan_to_num(tile.astype(np.float32)), 0, 1) * 255)
    return scaled.astype(np.uint8)


def encode_image_tile(tile: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an 8-bit tile (see `to_display` for other types)."""
    if fmt not in IMAGE_FORMATS:
        raise BadInput(f"Unknown tile format {fmt!r}; choose {', '.join(IMAGE_FORMATS)}.")
    buffer = io.BytesIO()
    picture = pillow_image().fromarray(tile)
    if fmt == "png":
        picture.save(buffer, format="PNG", compress_level=1)
    else:
        picture.save(buffer, format=fmt.upper(), quality=quality)
    return buffer.getvalue()


def encode_label_tile(tile: np.ndarray) -> bytes:
    """Raw little-endian ids, zlib-compressed (sent with Content-Encoding: deflate)."""
    dtype = "<u8" if tile.dtype.itemsize == 8 else "<u4"
    return zlib.compress(np.ascontiguousarray(tile, dtype=dtype).tobytes(), 1)


def render_tile(layer: Layer, address: TileAddress, fmt: str = "jpeg") -> tuple[bytes, str]:
    """The encoded tile and its media type."""
    tile = read_tile(layer, address)
    if layer.kind in LABEL_KINDS:
        return encode_label_tile(tile), "application/octet-stream"
    if layer.kind == "prediction":
        tile = prediction_to_display(tile)
    elif tile.dtype != np.uint8:
        tile = to_display(tile, display_range(str(layer.path), layer.levels[-1].path))
    return encode_image_tile(tile, fmt), IMAGE_FORMATS[fmt]
