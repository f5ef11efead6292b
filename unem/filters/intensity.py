"""Intensity filters: Gaussian, median, CLAHE, invert, normalise, unsharp mask.

Each takes an image (as stored: uint8, uint16) or a prediction (float32 in [0, 1]) and
gives the same kind in the same dtype, integer results rounded and clipped to the dtype's
range. The neighbourhood filters work in 3D when their z size is above zero (one), block by
block with a halo of their kernel's reach.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from unem.filters.catalog import INTENSITY, DimsOptions, Filter, FilterOptions
from unem.filters.gaussian import TRUNCATE, to_dtype

if TYPE_CHECKING:
    from unem.filters.runner import RunContext

READ_SLICES = 8


def top(dtype: np.dtype[Any]) -> float:
    """The largest value of an integer dtype; 1 for floats (probabilities)."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def to_unit(array: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: integers over their dtype's range, floats clipped."""
    unit: np.ndarray = (
        array / np.float32(top(array.dtype))
        if np.issubdtype(array.dtype, np.integer)
        else np.clip(array, 0, 1)
    )
    return unit.astype(np.float32)


def from_unit(unit: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    return to_dtype(unit * np.float32(top(dtype)), str(dtype))


# --- Gaussian ---------------------------------------------------------------------------


class GaussianOptions(FilterOptions):
    sigma: float = Field(1.0, gt=0, le=50, description="Standard deviation in y and x (voxels).")
    sigma_z: float = Field(
        0.0, ge=0, le=50, description="Standard deviation in z (voxels); 0: each slice alone."
    )


def gaussian(array: np.ndarray, options: GaussianOptions) -> np.ndarray:
    from scipy import ndimage

    sigma = (options.sigma_z, options.sigma, options.sigma) if array.ndim == 3 else options.sigma
    smooth = ndimage.gaussian_filter(
        array.astype(np.float32), sigma, mode="reflect", truncate=TRUNCATE
    )
    return to_dtype(smooth, str(array.dtype))


def gaussian_halo(options: GaussianOptions) -> tuple[int, int, int]:
    reach = math.ceil(TRUNCATE * options.sigma)
    return math.ceil(TRUNCATE * options.sigma_z), reach, reach


# --- median ------------------------------------------------------------------------------


class MedianOptions(FilterOptions):
    size: int = Field(3, ge=1, le=25, description="Window edge in y and x (voxels).")
    size_z: int = Field(1, ge=1, le=25, description="Window depth in z; 1: each slice alone.")


def median(array: np.ndarray, options: MedianOptions) -> np.ndarray:
    from scipy import ndimage

    size = (options.size_z, options.size, options.size) if array.ndim == 3 else options.size
    filtered: np.ndarray = ndimage.median_filter(array, size=size, mode="reflect")
    return filtered


def median_halo(options: MedianOptions) -> tuple[int, int, int]:
    return options.size_z // 2, options.size // 2, options.size // 2


# --- CLAHE -------------------------------------------------------------------------------


class ClaheOptions(FilterOptions):
    kernel_size: int = Field(
        128, ge=8, le=1024, description="Edge of the contextual regions (pixels)."
    )
    clip_limit: float = Field(
        0.01, gt=0, le=1, description="Contrast limit (0-1): higher gives more contrast."
    )


def clahe(array: np.ndarray, options: ClaheOptions) -> np.ndarray:
    from skimage import exposure

    unit = to_unit(array) if array.dtype != np.float32 else stretch_unit(array)
    kernel = min(options.kernel_size, *array.shape)
    equalised = exposure.equalize_adapthist(unit, kernel_size=kernel, clip_limit=options.clip_limit)
    return from_unit(np.asarray(equalised, np.float32), array.dtype)


def stretch_unit(array: np.ndarray) -> np.ndarray:
    """A float slice scaled to [0, 1] by its own minimum and maximum."""
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, np.float32)
    return ((array - low) / (high - low)).astype(np.float32)


# --- invert ------------------------------------------------------------------------------


class NoOptions(FilterOptions):
    pass


def invert(array: np.ndarray, options: NoOptions) -> np.ndarray:
    from skimage.util import invert as skimage_invert

    inverted: np.ndarray = skimage_invert(array)  # type: ignore[no-untyped-call]
    return inverted


# --- normalise ---------------------------------------------------------------------------


class NormaliseOptions(DimsOptions):
    low: float = Field(
        0.5, ge=0, le=50, description="Percentile that becomes black (0 of the range)."
    )
    high: float = Field(
        99.5, ge=50, le=100, description="Percentile that becomes white (the top of the range)."
    )


def normalise(array: np.ndarray, options: NormaliseOptions) -> np.ndarray:
    percents = (options.low, options.high)
    if np.issubdtype(array.dtype, np.integer):  # a histogram: the same values, no sort
        low, high = percentiles_from_counts(np.bincount(array.ravel()), percents)
    else:
        low, high = (float(p) for p in np.percentile(array, percents))
    return stretch(array, low, high)


def stretch(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """`low`..`high` onto the dtype's whole range (floats: [0, 1]), clipped."""
    if high <= low:
        return np.zeros(array.shape, array.dtype)
    scale = top(array.dtype) / (high - low)
    scaled = np.clip((array.astype(np.float32) - np.float32(low)) * np.float32(scale), 0, None)
    return to_dtype(np.minimum(scaled, np.float32(top(array.dtype))), str(array.dtype))


def normalise_volume(volume: Any, options: NormaliseOptions, run: RunContext) -> Iterator[Any]:
    """3D: the volume's percentiles from a histogram of every slice (integers: exact), then
    each slice stretched; a float volume is read whole."""
    depth = int(volume.shape[0])
    first = np.asarray(volume[0:1])
    if not np.issubdtype(first.dtype, np.integer):
        run.next_pass()
        yield from normalise(run.whole(volume), options)
        return
    counts = np.zeros(int(np.iinfo(first.dtype).max) + 1, np.int64)
    for z0 in range(0, depth, READ_SLICES):
        block = np.asarray(volume[z0 : z0 + READ_SLICES])
        counts += np.bincount(block.ravel(), minlength=len(counts))
        run.advance(min(z0 + READ_SLICES, depth), depth, "histogram")
    run.next_pass()
    low, high = percentiles_from_counts(counts, (options.low, options.high))
    for z0 in range(0, depth, READ_SLICES):
        yield from stretch(np.asarray(volume[z0 : z0 + READ_SLICES]), low, high)


def percentiles_from_counts(counts: np.ndarray, percents: tuple[float, ...]) -> list[float]:
    """The percentiles (numpy's linear interpolation) of the values whose counts these are."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    found = []
    for percent in percents:
        position = percent / 100 * (total - 1)
        below, above = math.floor(position), math.ceil(position)
        low = float(np.searchsorted(cumulative, below, side="right"))
        high = float(np.searchsorted(cumulative, above, side="right"))
        found.append(low + (high - low) * (position - below))
    return found


# --- unsharp mask ------------------------------------------------------------------------


class UnsharpOptions(FilterOptions):
    radius: float = Field(2.0, gt=0, le=50, description="Blur radius in y and x (voxels).")
    radius_z: float = Field(0.0, ge=0, le=50, description="Blur radius in z; 0: each slice alone.")
    amount: float = Field(1.0, gt=0, le=10, description="How much of the detail is added back.")


def unsharp_mask(array: np.ndarray, options: UnsharpOptions) -> np.ndarray:
    from skimage.filters import unsharp_mask as skimage_unsharp

    radius: Any = options.radius
    if array.ndim == 3:
        radius = (options.radius_z, options.radius, options.radius)
    sharp = skimage_unsharp(  # type: ignore[no-untyped-call]
        array.astype(np.float32), radius=radius, amount=options.amount, preserve_range=True
    )
    return to_dtype(np.asarray(sharp, np.float32), str(array.dtype))


def unsharp_halo(options: UnsharpOptions) -> tuple[int, int, int]:
    reach = math.ceil(TRUNCATE * options.radius)
    return math.ceil(TRUNCATE * options.radius_z), reach, reach


def register_filters(register: Callable[[Filter], None]) -> None:
    both = ("2d", "3d")
    for item in (
        Filter("gaussian", "Gaussian blur", "intensity",
               "Smooth with a Gaussian (scipy.ndimage); 3D when sigma_z > 0.",
               GaussianOptions, gaussian, INTENSITY, dims=both,
               mode=lambda o: "3d" if o.sigma_z > 0 else "2d", halo=gaussian_halo),
        Filter("median", "Median", "intensity",
               "Median of a window (scipy.ndimage): removes speckle, keeps edges.",
               MedianOptions, median, INTENSITY, dims=both,
               mode=lambda o: "3d" if o.size_z > 1 else "2d", halo=median_halo),
        Filter("clahe", "CLAHE", "intensity",
               "Contrast-limited adaptive histogram equalisation (scikit-image), per slice.",
               ClaheOptions, clahe, INTENSITY),
        Filter("invert", "Invert", "intensity",
               "Dark becomes bright: max − value (1 − p for predictions; a mask is swapped).",
               NoOptions, invert, INTENSITY | {"mask"}, pointwise=True),
        Filter("normalise", "Normalise", "intensity",
               "Stretch the low..high percentiles onto the whole range (per slice, or of "
               "the whole volume in 3d).",
               NormaliseOptions, normalise, INTENSITY, dims=both, stream=normalise_volume),
        Filter("unsharp-mask", "Unsharp mask", "intensity",
               "Sharpen: add back the difference from a Gaussian blur (scikit-image).",
               UnsharpOptions, unsharp_mask, INTENSITY, dims=both,
               mode=lambda o: "3d" if o.radius_z > 0 else "2d", halo=unsharp_halo),
    ):  # fmt: skip
        register(item)
