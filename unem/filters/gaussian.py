"""Gaussian smoothing of an image or prediction layer into a new layer, block by block.

The volume is read in blocks of slices with a margin of `ceil(truncate · sigma_z)` slices
on each side, so every output slice equals what filtering the whole volume at once gives,
while memory holds one block.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from unem.errors import BadInput
from unem.progress import Progress, no_progress
from unem.volumes.datasets import Layer, get_dataset
from unem.volumes.layers import add_layer, check_new_layer
from unem.volumes.store import LABEL_KINDS, open_level
from unem.workspace import Workspace

TRUNCATE = 4.0  # the kernel reaches this many sigmas
BLOCK_SLICES = 16


def smoothed_slices(source: Any, sigma: float, sigma_z: float, dtype: str) -> Iterator[np.ndarray]:
    """The slices of `source` (z, y, x; array-like, read in blocks), smoothed, in `dtype`."""
    from scipy import ndimage

    depth = int(source.shape[0])
    margin = math.ceil(TRUNCATE * sigma_z) if sigma_z > 0 else 0
    for z0 in range(0, depth, BLOCK_SLICES):
        z1 = min(z0 + BLOCK_SLICES, depth)
        lo, hi = max(z0 - margin, 0), min(z1 + margin, depth)
        block = np.asarray(source[lo:hi], dtype=np.float32)
        smooth: np.ndarray = ndimage.gaussian_filter(
            block, (sigma_z, sigma, sigma), mode="reflect", truncate=TRUNCATE
        )
        for plane in smooth[z0 - lo : z1 - lo]:
            yield to_dtype(plane, dtype)


def to_dtype(plane: np.ndarray, dtype: str) -> np.ndarray:
    """Round and clip to an integer dtype's range; cast to a float one."""
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        plane = np.clip(np.rint(plane), info.min, info.max)
    converted: np.ndarray = plane.astype(dtype)
    return converted


def gaussian_layer(
    ws: Workspace,
    dataset_id: str,
    layer_name: str,
    output: str,
    sigma: float,
    sigma_z: float = 0.0,
    overwrite: bool = False,
    progress: Progress = no_progress,
) -> Layer:
    """Smooth `layer_name` with a Gaussian of `sigma` voxels in y and x, and `sigma_z` in z
    (0: each slice on its own), into the new layer `output`."""
    layer = check_gaussian(ws, dataset_id, layer_name, output, sigma, sigma_z, overwrite)
    source = open_level(layer.path, layer.levels[0].path)
    description = f"gaussian(sigma={sigma:g}, sigma_z={sigma_z:g}) of {layer_name}"
    planes = smoothed_slices(source, sigma, sigma_z, layer.dtype)
    return add_layer(
        ws, dataset_id, output, layer.kind, layer.dtype, planes, description, overwrite, progress
    )


def check_gaussian(
    ws: Workspace,
    dataset_id: str,
    layer_name: str,
    output: str,
    sigma: float,
    sigma_z: float,
    overwrite: bool,
) -> Layer:
    """The layer to smooth, or BadInput saying why the request cannot work."""
    dataset = get_dataset(ws, dataset_id)
    if layer_name not in dataset.layers:
        raise BadInput(f"Dataset {dataset_id!r} has no layer {layer_name!r}.")
    layer = dataset.layers[layer_name]
    if layer.kind in LABEL_KINDS:
        raise BadInput(f"{layer_name} holds labels; smoothing them would invent ids.")
    if not (sigma > 0 and sigma_z >= 0):
        raise BadInput("sigma must be positive and sigma_z at least 0.")
    if output == layer_name:
        raise BadInput("The output must be a new layer, not the one smoothed.")
    check_new_layer(ws, dataset_id, output, overwrite)
    return layer
