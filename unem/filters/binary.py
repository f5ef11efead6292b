"""Binary filters: thresholds (fixed, Otsu), Canny edges, morphology (erode, dilate, open,
close), fill holes, remove small objects, and the distance transform of a mask.

Thresholds turn an image or prediction into a mask; the morphology also works on
intensities (grey-level erosion is a minimum filter); the distance transform turns a
mask into an image of float32 distances in voxels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from unem.filters.catalog import INTENSITY, DimsOptions, Filter, FilterOptions
from unem.filters.intensity import top
from unem.filters.slabs import Connectivity, components, stitched_components

if TYPE_CHECKING:
    from unem.filters.runner import RunContext

READ_SLICES = 8
CONNECTIVITY_HELP = (
    "Which neighbours touch: faces (4 in 2D, 6 in 3D), edges (8, 18), corners (8, 26)."
)

# --- thresholds --------------------------------------------------------------------------


class ThresholdOptions(FilterOptions):
    threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="As a fraction of the full range: a probability for predictions, "
        "× 255 for 8-bit images, × 65535 for 16-bit ones.",
    )
    below: bool = Field(
        False, description="Objects are below the threshold (dark membranes, a boundary map)."
    )


def threshold(array: np.ndarray, options: ThresholdOptions) -> np.ndarray:
    level = options.threshold * top(array.dtype)
    mask: np.ndarray = array < level if options.below else array >= level
    return mask


class OtsuOptions(DimsOptions):
    below: bool = Field(False, description="Objects are the dark (low) class.")


def otsu(array: np.ndarray, options: OtsuOptions) -> np.ndarray:
    from skimage.filters import threshold_otsu

    if array.min() == array.max():
        return np.zeros(array.shape, bool)
    level = threshold_otsu(array)  # type: ignore[no-untyped-call]
    return split(array, float(level), options.below)


def split(array: np.ndarray, level: float, below: bool) -> np.ndarray:
    """Otsu's classes: above the threshold is the bright one."""
    mask: np.ndarray = array <= level if below else array > level
    return mask


def otsu_volume(volume: Any, options: OtsuOptions, run: RunContext) -> Iterator[np.ndarray]:
    """3D: one threshold from the histogram of the whole volume, built slab by slab (as
    scikit-image builds it: one bin per integer value, 256 bins over the range of floats)."""
    from skimage.filters import threshold_otsu

    blocks = _blocks(volume)
    low: float
    high: float
    counts: np.ndarray
    if np.issubdtype(np.asarray(volume[0:1]).dtype, np.integer):
        counts = np.zeros(1, np.int64)
        for block in blocks():
            found = np.bincount(block.ravel().astype(np.int64), minlength=len(counts))
            counts = np.pad(counts, (0, len(found) - len(counts))) + found
        present = np.flatnonzero(counts)
        low, high = int(present[0]), int(present[-1])
        counts, centers = counts[low : high + 1], np.arange(low, high + 1)
    else:
        ranges = [(float(b.min()), float(b.max())) for b in blocks()]
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
        counts = np.sum([np.histogram(b, bins=256, range=(low, high))[0] for b in blocks()], axis=0)
        edges = np.histogram_bin_edges(np.array([low, high]), bins=256, range=(low, high))
        centers = (edges[:-1] + edges[1:]) / 2
    run.next_pass()
    if low == high:
        for block in blocks():
            yield from np.zeros(block.shape, bool)
        return
    level = float(threshold_otsu(hist=(np.asarray(counts), centers)))  # type: ignore[no-untyped-call]
    for block in blocks():
        yield from split(block, level, options.below)


def _blocks(volume: Any) -> Callable[[], Iterator[np.ndarray]]:
    depth = int(volume.shape[0])
    return lambda: (np.asarray(volume[z : z + READ_SLICES]) for z in range(0, depth, READ_SLICES))


class CannyOptions(FilterOptions):
    sigma: float = Field(2.0, gt=0, le=20, description="Smoothing before the gradient (pixels).")
    low: float = Field(
        0.7, ge=0, le=1, description="Weak edges: gradient above this quantile of the slice's."
    )
    high: float = Field(
        0.9, ge=0, le=1, description="Strong edges: gradient above this quantile (≥ low)."
    )


def canny(array: np.ndarray, options: CannyOptions) -> np.ndarray:
    from skimage.feature import canny as skimage_canny

    low, high = sorted((options.low, options.high))
    edges: np.ndarray = skimage_canny(  # type: ignore[no-untyped-call]
        array.astype(np.float32), options.sigma, low, high, use_quantiles=True
    )
    return edges


# --- morphology --------------------------------------------------------------------------


class MorphologyOptions(FilterOptions):
    radius: int = Field(1, ge=1, le=25, description="Radius of the footprint in y and x.")
    radius_z: int = Field(0, ge=0, le=25, description="Radius in z; 0: each slice alone.")
    shape: Literal["disk", "square"] = Field(
        "disk", description="disk (ball or ellipsoid in 3D) or square (box)."
    )


def footprint(options: MorphologyOptions, ndim: int) -> np.ndarray:
    """The footprint: a disk or square in 2D, an ellipsoid or box in 3D."""
    r, rz = options.radius, (options.radius_z if ndim == 3 else 0)
    if options.shape == "square":
        return np.ones((2 * rz + 1, 2 * r + 1, 2 * r + 1)[3 - ndim :], bool)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    if ndim == 2:
        disk: np.ndarray = y**2 + x**2 <= r**2
        return disk
    z = np.arange(-rz, rz + 1)[:, None, None]
    ball: np.ndarray = (z / max(rz, 1)) ** 2 + (y / r) ** 2 + (x / r) ** 2 <= 1
    return ball


def morphology(operation: str) -> Callable[[np.ndarray, MorphologyOptions], np.ndarray]:
    def apply(array: np.ndarray, options: MorphologyOptions) -> np.ndarray:
        from skimage import morphology as skimage_morphology

        function = getattr(skimage_morphology, operation)
        result: np.ndarray = function(array, footprint(options, array.ndim))
        return result

    apply.__name__ = operation
    return apply


def morphology_halo(times: int) -> Callable[[MorphologyOptions], tuple[int, int, int]]:
    return lambda o: (times * o.radius_z, times * o.radius, times * o.radius)


def radius_mode(options: MorphologyOptions) -> str:
    return "3d" if options.radius_z > 0 else "2d"


# --- objects of a mask -------------------------------------------------------------------


class FillHolesOptions(DimsOptions):
    pass


def fill_holes(array: np.ndarray, options: FillHolesOptions) -> np.ndarray:
    from scipy import ndimage

    filled: np.ndarray = ndimage.binary_fill_holes(array)
    return filled


class RemoveSmallOptions(DimsOptions):
    min_size: int = Field(
        64, ge=1, le=2**31, description="Objects with fewer voxels (pixels in 2d) go."
    )
    connectivity: Connectivity = Field("faces", description=CONNECTIVITY_HELP)


def remove_small_objects(array: np.ndarray, options: RemoveSmallOptions) -> np.ndarray:
    labels = components(array, options.connectivity)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= options.min_size
    keep[0] = False
    kept: np.ndarray = keep[labels]
    return kept


def remove_small_volume(
    volume: Any, options: RemoveSmallOptions, run: RunContext
) -> Iterator[np.ndarray]:
    for labels in stitched_components(volume, options.connectivity, options.min_size, run):
        yield labels > 0


class DistanceOptions(DimsOptions):
    sampling_z: float = Field(
        1.0,
        gt=0,
        le=100,
        description="3d: section thickness over the pixel size (10 for 40 nm sections of "
        "4 nm pixels), so distances are in pixels of y and x.",
    )


def distance_transform(array: np.ndarray, options: DistanceOptions) -> np.ndarray:
    from scipy import ndimage

    anisotropic = array.ndim == 3 and options.sampling_z != 1
    sampling = (options.sampling_z, 1.0, 1.0) if anisotropic else None  # None: faster
    distance = ndimage.distance_transform_edt(array, sampling=sampling)
    return np.asarray(distance, np.float32)


def register_filters(register: Callable[[Filter], None]) -> None:
    both, mask = ("2d", "3d"), frozenset({"mask"})
    morph = INTENSITY | mask
    for item in (
        Filter("threshold", "Threshold (fixed)", "binarise",
               "Objects where the value is at or above a fixed threshold (or below it).",
               ThresholdOptions, threshold, INTENSITY, "mask", pointwise=True),
        Filter("otsu", "Threshold (Otsu)", "binarise",
               "Otsu's threshold (scikit-image), per slice or of the whole volume's histogram.",
               OtsuOptions, otsu, INTENSITY, "mask", dims=both, stream=otsu_volume),
        Filter("canny", "Canny edges", "binarise",
               "Edges by Canny's method (scikit-image), per slice.",
               CannyOptions, canny, INTENSITY, "mask"),
        Filter("erode", "Erode", "morphology", "Shrink objects (minimum over the footprint).",
               MorphologyOptions, morphology("erosion"), morph, dims=both, mode=radius_mode,
               halo=morphology_halo(1)),
        Filter("dilate", "Dilate", "morphology", "Grow objects (maximum over the footprint).",
               MorphologyOptions, morphology("dilation"), morph, dims=both, mode=radius_mode,
               halo=morphology_halo(1)),
        Filter("open", "Open", "morphology",
               "Erode then dilate: removes specks and thin bridges.",
               MorphologyOptions, morphology("opening"), morph, dims=both, mode=radius_mode,
               halo=morphology_halo(2)),
        Filter("close", "Close", "morphology", "Dilate then erode: closes gaps and small holes.",
               MorphologyOptions, morphology("closing"), morph, dims=both, mode=radius_mode,
               halo=morphology_halo(2)),
        Filter("fill-holes", "Fill holes", "mask",
               "Fill the background enclosed by objects (scipy.ndimage; 3d: whole volume).",
               FillHolesOptions, fill_holes, mask, dims=both),
        Filter("remove-small-objects", "Remove small objects", "mask",
               "Drop the connected objects with fewer voxels than min_size.",
               RemoveSmallOptions, remove_small_objects, mask, dims=both,
               stream=remove_small_volume),
        Filter("distance-transform", "Distance transform", "mask",
               "Euclidean distance of each object voxel to the background (scipy.ndimage; "
               "3d: whole volume).",
               DistanceOptions, distance_transform, mask, "image", dims=both),
    ):  # fmt: skip
        register(item)
