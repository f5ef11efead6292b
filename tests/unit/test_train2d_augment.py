"""Augmentation keeps image and target aligned, never invents classes, leaves the target
alone in intensity operations and never modifies its inputs."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from unem.train2d.augment import augment, deform, displacement_field
from unem.train2d.options import AugmentOptions

OFF = {
    "flip": 0.0,
    "rotate90": 0.0,
    "elastic": 0.0,
    "brightness_contrast": 0.0,
    "gamma": 0.0,
    "noise": 0.0,
    "blur": 0.0,
}
GEOMETRIC = ("flip", "rotate90", "elastic")
INTENSITY = ("brightness_contrast", "gamma", "noise", "blur")


def only(*names: str, **extra: float) -> AugmentOptions:
    return AugmentOptions(**{**OFF, **dict.fromkeys(names, 1.0), **extra})


def blocks(shape: tuple[int, int], seed: int, count: int = 14) -> np.ndarray:
    """Labels 0-5 in overlapping rectangles of random size: no symmetry to hide a mistake."""
    rng = np.random.default_rng(seed)
    target = np.zeros(shape, np.uint8)
    for _ in range(count):
        y, x = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
        h, w = rng.integers(8, shape[0] // 2), rng.integers(8, shape[1] // 2)
        target[y : y + h, x : x + w] = rng.integers(1, 6)
    return target


def cells(shape: tuple[int, int], seed: int, size: int = 8) -> np.ndarray:
    """Labels 0-5 in square cells of `size`: fine enough that a shift breaks alignment."""
    grid = np.random.default_rng(seed).integers(0, 6, (shape[0] // size + 1, shape[1] // size + 1))
    return np.kron(grid, np.ones((size, size), int)).astype(np.uint8)[: shape[0], : shape[1]]


def image_of(target: np.ndarray) -> np.ndarray:
    """A two-channel image that is a fixed function of the label at each pixel."""
    return np.stack([target * 0.15, 1 - target * 0.1], axis=-1).astype(np.float32)


def interior(target: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose (2·margin+1)² neighbourhood holds one label only."""
    size = 2 * margin + 1
    return ndimage.minimum_filter(target, size) == ndimage.maximum_filter(target, size)


@pytest.mark.parametrize("shape", [(64, 64), (64, 48)])
@pytest.mark.parametrize("name", ["flip", "rotate90"])
def test_flips_and_rotations_move_image_and_target_together(
    name: str, shape: tuple[int, int]
) -> None:
    target = blocks(shape, 1)
    image = image_of(target)
    changed = 0
    for seed in range(40):
        out_image, out_target = augment(image, target, np.random.default_rng(seed), only(name))
        assert out_image.shape[:2] == out_target.shape and out_image.shape[2] == 2
        assert sorted(out_target.shape) == sorted(shape)
        np.testing.assert_array_equal(out_image, image_of(out_target))
        changed += not np.array_equal(out_target, target)
    assert changed >= 30  # the operation really ran


def test_elastic_deformation_keeps_image_and_target_aligned() -> None:
    target = cells((128, 128), 2)
    image = image_of(target)
    values = set(np.unique(target).tolist())
    for seed in range(20):
        rng = np.random.default_rng(seed)
        out_image, out_target = augment(image, target, rng, only("elastic"))
        assert out_target.dtype == np.uint8 and set(np.unique(out_target).tolist()) <= values
        assert not np.array_equal(out_target, target)
        inside = interior(out_target)
        assert inside.mean() > 0.2  # enough interior pixels for the check to mean something
        agree = np.all(np.abs(out_image - image_of(out_target)) < 1e-5, axis=-1)
        assert agree[inside].mean() > 0.99


def test_elastic_check_detects_misalignment() -> None:
    """The alignment check above fails when the image moves but the target does not."""
    target = cells((128, 128), 2)
    image = image_of(target)
    for seed in range(5):
        field = displacement_field(target.shape, 8.0, 10.0, np.random.default_rng(seed))
        moved, _ = deform(image, target, field)
        inside = interior(target)
        agree = np.all(np.abs(moved - image_of(target)) < 1e-5, axis=-1)
        assert agree[inside].mean() < 0.95


def test_displacement_field_is_bounded_and_smooth() -> None:
    field = displacement_field((128, 96), 8.0, 10.0, np.random.default_rng(3))
    assert field.shape == (2, 128, 96)
    length = np.sqrt((field**2).sum(axis=0))
    assert length.max() == pytest.approx(8.0)
    assert np.abs(np.diff(field, axis=1)).max() < 1.0  # no jumps between neighbours
    assert np.abs(np.diff(field, axis=2)).max() < 1.0


def test_all_geometric_operations_together_stay_aligned() -> None:
    target = cells((96, 96), 4)
    image = image_of(target)
    options = only(*GEOMETRIC, flip=0.5, rotate90=0.5, elastic=0.5)
    for seed in range(60):
        out_image, out_target = augment(image, target, np.random.default_rng(seed), options)
        inside = interior(out_target)
        agree = np.all(np.abs(out_image - image_of(out_target)) < 1e-5, axis=-1)
        assert agree[inside].mean() > 0.99


def test_zero_probabilities_give_back_the_patch() -> None:
    target = blocks((64, 64), 5)
    image = image_of(target)
    out_image, out_target = augment(image, target, np.random.default_rng(0), only())
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_target, target)
    assert not np.shares_memory(out_image, image) and not np.shares_memory(out_target, target)


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_operations_change_the_image_only(name: str) -> None:
    target = blocks((64, 64), 6)
    image = np.clip(image_of(target) * 0.8 + 0.1, 0, 1).astype(np.float32)
    changed = 0
    for seed in range(10):
        out_image, out_target = augment(image, target, np.random.default_rng(seed), only(name))
        np.testing.assert_array_equal(out_target, target)
        assert out_image.dtype == np.float32 and out_image.shape == image.shape
        assert out_image.min() >= 0 and out_image.max() <= 1
        changed += not np.allclose(out_image, image, atol=1e-4)
    assert changed >= 8


def test_inputs_are_never_modified() -> None:
    target = blocks((64, 64), 7)
    image = image_of(target)
    image_copy, target_copy = image.copy(), target.copy()
    options = only(*GEOMETRIC, *INTENSITY)
    for seed in range(10):
        out_image, out_target = augment(image, target, np.random.default_rng(seed), options)
        out_image[:] = 0.5  # the outputs are the caller's to change
        out_target[:] = 9
    np.testing.assert_array_equal(image, image_copy)
    np.testing.assert_array_equal(target, target_copy)


def test_same_generator_state_gives_the_same_patch() -> None:
    target = blocks((64, 64), 8)
    image = image_of(target)
    options = only(*GEOMETRIC, *INTENSITY)
    first = augment(image, target, np.random.default_rng(11), options)
    second = augment(image, target, np.random.default_rng(11), options)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_elastic_is_fast_enough_for_every_patch() -> None:
    target = blocks((128, 128), 9)
    image = image_of(target)[..., :1]
    rng = np.random.default_rng(0)
    options = only("elastic")
    augment(image, target, rng, options)
    started = time.perf_counter()
    for _ in range(50):
        augment(image, target, rng, options)
    per_patch = (time.perf_counter() - started) / 50
    assert per_patch < 0.025  # a few ms on an idle CPU; generous for busy CI machines
