"""Pictures of layers for people: 8-bit display conversion and dataset thumbnails."""

from __future__ import annotations

import io

import numpy as np

from unem.volumes.datasets import Dataset
from unem.volumes.export import label_colours
from unem.volumes.sources import pillow_image
from unem.volumes.store import LABEL_KINDS, open_level

THUMBNAIL_SIZE = 256
OVERLAY_ALPHA = 0.35


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale an image slice to 8 bits for display (16-bit and float by their 0.5–99.5 %)."""
    if array.dtype == np.uint8:
        return array
    low, high = np.percentile(array, (0.5, 99.5))
    if high <= low:
        return np.zeros(array.shape, np.uint8)
    scaled: np.ndarray = (array.astype(np.float32) - low) * (255.0 / (high - low))
    clipped: np.ndarray = np.clip(scaled, 0, 255)
    return clipped.astype(np.uint8)


def thumbnail_png(dataset: Dataset) -> bytes:
    """The middle slice of the coarsest level, with the segmentation tinted over it."""
    image = dataset.layer("image")
    top = image.levels[-1]
    z = top.shape[0] // 2
    gray = to_uint8(np.asarray(open_level(image.path, top.path)[z]))
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    for layer in dataset.layers.values():
        if layer.kind in LABEL_KINDS and layer.name == "segmentation":
            labels = np.asarray(open_level(layer.path, layer.levels[-1].path)[z])
            tinted = labels != 0
            rgb[tinted] = (1 - OVERLAY_ALPHA) * rgb[tinted] + OVERLAY_ALPHA * label_colours(labels)[
                tinted
            ]
    picture = pillow_image().fromarray(rgb.astype(np.uint8))
    picture.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
