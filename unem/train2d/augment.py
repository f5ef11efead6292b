"""Random perturbations of a training patch: geometric ones move the image and its target
together, intensity ones change the image only.

Each operation is applied with its probability from `AugmentOptions`. Geometric
operations keep every target value a value of the input target (labels are moved, never
interpolated), so no class appears that was not painted. Runs per patch on the CPU with
numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from unem.train2d.options import AugmentOptions

BRIGHTNESS = 0.1  # largest shift of brightness
CONTRAST = (0.8, 1.2)  # range of the contrast factor, about the patch's mean
GAMMA = (0.7, 1.5)  # range of the gamma exponent (log-uniform)
NOISE = 0.05  # largest standard deviation of the additive noise
BLUR = 1.5  # largest sigma of the blur (pixels)
ELASTIC_COARSE = 4  # the elastic field is drawn this many times coarser than the patch


def augment(
    image: np.ndarray, target: np.ndarray, rng: np.random.Generator, options: AugmentOptions
) -> tuple[np.ndarray, np.ndarray]:
    """A randomly perturbed copy of a patch and its target.

    Parameters
    ----------
    image
        (height, width, channels) float32 in [0, 1].
    target
        (height, width) uint8 classes.
    rng
        The source of randomness (one per patch for reproducible batches).
    options
        The probability of each operation and the strength of the elastic one.

    Returns
    -------
    The new image (float32 in [0, 1]) and target (same dtype); the inputs are not modified.
    """
    out_image, out_target = geometric(image, target, rng, options)
    out_image = intensity(out_image, rng, options)
    if np.shares_memory(out_image, image):
        out_image = out_image.copy()
    if np.shares_memory(out_target, target):
        out_target = out_target.copy()
    return np.ascontiguousarray(out_image), np.ascontiguousarray(out_target)


def geometric(
    image: np.ndarray, target: np.ndarray, rng: np.random.Generator, options: AugmentOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Flips, rotations and elastic deformation, alike for image and target (maybe views)."""
    if rng.random() < options.flip:
        image, target = flip(image, target, int(rng.integers(3)))
    if rng.random() < options.rotate90:
        square = image.shape[0] == image.shape[1]
        image, target = rotate(image, target, int(rng.integers(4)) if square else 1)
    if rng.random() < options.elastic and options.elastic_alpha > 0:
        field = displacement_field(target.shape, options.elastic_alpha, options.elastic_sigma, rng)
        image, target = deform(image, target, field)
    return image, target


def flip(image: np.ndarray, target: np.ndarray, which: int) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right (0), up-down (1) or both (2)."""
    axes = ((1,), (0,), (0, 1))[which]
    return np.flip(image, axis=axes), np.flip(target, axis=axes)


def rotate(image: np.ndarray, target: np.ndarray, which: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by 90° (0), 180° (1), 270° (2), or transpose (3); only 180° keeps a
    non-square patch's shape."""
    if which == 3:
        return image.transpose(1, 0, 2), target.T
    turns = (1, 2, 3)[which]
    return np.rot90(image, turns, axes=(0, 1)), np.rot90(target, turns, axes=(0, 1))


def displacement_field(
    shape: tuple[int, ...], alpha: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """A smooth random displacement (2, height, width) whose largest length is `alpha`.

    White noise smoothed with a Gaussian of `sigma` pixels, drawn on a grid up to
    ELASTIC_COARSE times coarser and interpolated up linearly: the same field at a
    fraction of the cost (the coarse grid still samples the smoothed noise finely).
    """
    height, width = shape[:2]
    step = max(1, min(ELASTIC_COARSE, int(sigma // 2)))
    coarse = (2, height // step + 2, width // step + 2)
    noise = rng.standard_normal(coarse)
    smooth = ndimage.gaussian_filter(noise, (0, sigma / step, sigma / step), mode="reflect")
    field = upsample(upsample(smooth, 1, height, step), 2, width, step)
    largest = float(np.sqrt((field**2).sum(axis=0)).max())
    return field * (alpha / largest) if largest > 0 else field


def upsample(grid: np.ndarray, axis: int, length: int, step: int) -> np.ndarray:
    """Linear interpolation along `axis` from points every `step` pixels to `length` pixels.

    (Gathers and weights, not a matrix product: BLAS threads cost more than they save on
    arrays this small.)
    """
    position = np.arange(length) / step
    below = np.floor(position).astype(int)
    shape = [1] * grid.ndim
    shape[axis] = length
    weight = (position - below).reshape(shape)
    lower, upper = np.take(grid, below, axis=axis), np.take(grid, below + 1, axis=axis)
    result: np.ndarray = lower + (upper - lower) * weight
    return result


def deform(
    image: np.ndarray, target: np.ndarray, field: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move each pixel by `field`: the image interpolated linearly, the target nearest."""
    height, width = target.shape
    grid = np.mgrid[0:height, 0:width].astype(np.float32)
    coords = grid + field.astype(np.float32)
    warped = np.empty_like(image)
    for channel in range(image.shape[2]):
        ndimage.map_coordinates(
            image[..., channel], coords, output=warped[..., channel], order=1, mode="reflect"
        )
    labels = ndimage.map_coordinates(target, coords, order=0, mode="reflect")
    return warped, labels.astype(target.dtype)


def intensity(image: np.ndarray, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """Brightness and contrast, gamma, blur and noise; clipped to [0, 1] (may return `image`)."""
    changed = False
    if rng.random() < options.brightness_contrast:
        factor = rng.uniform(*CONTRAST)
        image = (image - image.mean()) * factor + image.mean() + rng.uniform(-1, 1) * BRIGHTNESS
        changed = True
    if rng.random() < options.gamma:
        exponent = np.exp(rng.uniform(np.log(GAMMA[0]), np.log(GAMMA[1])))
        image = np.clip(image, 0, 1) ** exponent
        changed = True
    if rng.random() < options.blur:
        sigma = rng.uniform(0.3, BLUR)
        image = ndimage.gaussian_filter(image, (sigma, sigma, 0), mode="reflect")
        changed = True
    if rng.random() < options.noise:
        image = image + rng.normal(0, rng.uniform(0, NOISE), image.shape)
        changed = True
    return np.clip(image, 0, 1).astype(np.float32) if changed else image
