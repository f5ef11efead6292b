"""Synthetic EM-like 8-bit stacks written as multi-page TIFF, for import benchmarks.

Not noise and not constant, so compression behaves as on real data: dark curved
"membranes" (zero crossings of smoothed noise) on a textured grey background, drifting
slowly from slice to slice, plus a little per-slice shot noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

SLICE_EDGE = 1024  # 1024 × 1024 × 1 byte: 1 MiB per slice
DRIFT = (3, 2)  # px per slice the scene moves along y and x


def scene(rng: np.random.Generator, edge: int) -> np.ndarray:
    """A uint8 texture of `edge` × `edge` px, values 20-200."""
    from scipy import ndimage  # here, so the import workers that read SLICE_EDGE skip scipy

    cells = ndimage.gaussian_filter(rng.standard_normal((edge, edge), np.float32), 12)
    cells /= cells.std()
    membranes = np.exp(-((cells / 0.12) ** 2))  # thin dark curves where `cells` crosses 0
    texture = ndimage.gaussian_filter(rng.standard_normal((edge, edge), np.float32), 1.5)
    grey = 150 + 25 * texture / texture.std() - 100 * membranes
    return np.clip(grey, 20, 200).astype(np.uint8)


def slices(count: int, edge: int = SLICE_EDGE, seed: int = 0) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    big = scene(rng, 2 * edge)
    for z in range(count):
        y, x = (z * DRIFT[0]) % edge, (z * DRIFT[1]) % edge
        noise = rng.integers(0, 10, (edge, edge), dtype=np.uint8)
        yield big[y : y + edge, x : x + edge] + noise


def write_stack(path: Path, count: int, edge: int = SLICE_EDGE) -> Path:
    """Write `count` slices as one uncompressed multi-page TIFF series (z, y, x)."""
    tifffile.imwrite(path, slices(count, edge), shape=(count, edge, edge), dtype=np.uint8)
    return path
