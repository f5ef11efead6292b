"""Shrinking images and labels for low-resolution training, enlarging predictions back."""

from __future__ import annotations

import numpy as np

from unem.train2d.resolution import enlarge_probabilities, shrink_images, shrink_labels


def test_images_shrink_to_block_means_with_the_edge_repeated() -> None:
    image = np.arange(20, dtype=np.float32).reshape(4, 5)
    # Blocks of [[0, 1], [5, 6]] ... the last column pads 4 → [4, 4], 9 → [9, 9].
    expected = [[3.0, 5.0, 6.5], [13.0, 15.0, 16.5]]
    assert np.array_equal(shrink_images(image, 2), expected)
    stack = np.stack([image, image + 1])
    assert shrink_images(stack, 2).shape == (2, 2, 3)
    assert shrink_images(image, 1) is image


def test_labels_shrink_to_the_pixel_nearest_each_block_centre() -> None:
    labels = np.arange(36, dtype=np.uint8).reshape(6, 6)
    assert np.array_equal(shrink_labels(labels, 3), [[7, 10], [25, 28]])
    assert shrink_labels(labels[:5, :5], 2).shape == (3, 3)


def test_enlarging_interpolates_between_block_centres() -> None:
    ramp = np.tile(np.arange(64, dtype=np.float32), (48, 1))
    shrunk = shrink_images(ramp, 4)[..., None]
    enlarged = enlarge_probabilities(shrunk, 4, 48, 64)
    assert enlarged.shape == (48, 64, 1)
    # A linear ramp is rebuilt exactly between the first and last block centres.
    assert np.allclose(enlarged[:, 2:-2, 0], ramp[:, 2:-2], atol=1e-4)


def test_enlarging_crops_the_padding_of_odd_sizes() -> None:
    probs = np.full((3, 4, 2), 0.25, dtype=np.float32)
    enlarged = enlarge_probabilities(probs, 2, 5, 7)
    assert enlarged.shape == (5, 7, 2) and np.allclose(enlarged, 0.25)
