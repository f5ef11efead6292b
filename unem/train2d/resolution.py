"""Training and predicting at a lower resolution than the images' own.

Large structures (mitochondria, nuclei, cell bodies) span hundreds of pixels at EM
resolution, wider than a CNN's receptive field. Averaging `factor` × `factor` blocks
first gives the model `factor` times the context and `factor`² fewer pixels to compute
per area; the probabilities it predicts are then interpolated back onto the full grid.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def shrink_images(planes: np.ndarray, factor: int) -> np.ndarray:
    """float32 (..., h, w) → (..., ⌈h/f⌉, ⌈w/f⌉): the mean of each f × f block (the last
    row and column of blocks are filled by repeating the edge)."""
    if factor == 1:
        return planes
    padded = _pad_to_blocks(planes, factor)
    *lead, height, width = padded.shape
    blocks = padded.reshape(*lead, height // factor, factor, width // factor, factor)
    shrunk: np.ndarray = blocks.mean(axis=(-3, -1), dtype=np.float32)
    return shrunk


def shrink_labels(targets: np.ndarray, factor: int) -> np.ndarray:
    """(..., h, w) classes → (..., ⌈h/f⌉, ⌈w/f⌉): the pixel nearest each block's centre
    (a label cannot be averaged; the edge is repeated as in `shrink_images`)."""
    if factor == 1:
        return targets
    padded = _pad_to_blocks(targets, factor)
    picked: np.ndarray = padded[..., factor // 2 :: factor, factor // 2 :: factor]
    return np.ascontiguousarray(picked)


def enlarge_probabilities(probs: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """(h', w', k) predicted on the shrunk grid → (height, width, k) on the full grid,
    linearly interpolated between block centres."""
    if factor == 1:
        return probs
    # grid_mode: pixels are areas, so block centres land on the full grid's block centres.
    zoom = (factor, factor, 1)
    enlarged = ndimage.zoom(probs, zoom, order=1, mode="nearest", grid_mode=True)
    return np.asarray(enlarged[:height, :width], dtype=np.float32)


def _pad_to_blocks(array: np.ndarray, factor: int) -> np.ndarray:
    """The last two axes repeated at their ends up to multiples of `factor`."""
    height, width = array.shape[-2:]
    pad_y = math.ceil(height / factor) * factor - height
    pad_x = math.ceil(width / factor) * factor - width
    if not (pad_y or pad_x):
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(0, pad_y), (0, pad_x)]
    padded: np.ndarray = np.pad(array, widths, mode="edge")
    return padded
