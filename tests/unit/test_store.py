"""The chunked pyramid store: level plans, pooling, slice-by-slice writing in bounded memory."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import zarr

from unem.volumes.datasets import import_dataset
from unem.volumes.sources import StackSource
from unem.volumes.store import (
    BLOCK_BYTES,
    TILE,
    Level,
    PyramidWriter,
    downsample,
    open_level,
    plan_levels,
)
from unem.workspace import Workspace


def shapes(levels: list[Level]) -> list[tuple[int, int, int]]:
    return [level.shape for level in levels]


def test_isotropic_voxels_halve_z_too() -> None:
    levels = plan_levels((64, 1024, 1000), (10, 10, 10))
    assert shapes(levels) == [(64, 1024, 1000), (32, 512, 500), (16, 256, 250)]
    assert [level.scale for level in levels] == [(1, 1, 1), (2, 2, 2), (4, 4, 4)]


def test_anisotropic_voxels_keep_z() -> None:
    levels = plan_levels((64, 1024, 1000), (50, 4, 4))
    assert shapes(levels) == [(64, 1024, 1000), (64, 512, 500), (64, 256, 250)]
    assert [level.scale for level in levels] == [(1, 1, 1), (1, 2, 2), (1, 4, 4)]


def test_z_is_halved_once_the_levels_become_near_isotropic() -> None:
    # 30 nm sections, 10 nm pixels: level 1 has 20 nm pixels, so level 2 (40 nm) may
    # take 60 nm sections; at level 1 the sections would be 3× the pixel size.
    levels = plan_levels((8, 2048, 2048), (30, 10, 10))
    assert [level.scale[0] for level in levels] == [1, 1, 2, 4]
    assert shapes(levels)[-1] == (2, 256, 256)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((3, 256, 100), [(3, 256, 100)]),  # already small: one level
        ((3, 257, 100), [(3, 257, 100), (2, 129, 50)]),  # odd sizes round up
        ((1, 600, 300), [(1, 600, 300), (1, 300, 150), (1, 150, 75)]),  # one slice: z stays
    ],
)
def test_levels_stop_at_256(shape: tuple[int, int, int], expected: list[tuple[int, ...]]) -> None:
    assert shapes(plan_levels(shape, (10, 10, 10))) == expected


def test_image_mean_of_a_hand_computed_block() -> None:
    block = np.array([[[1, 2, 5, 7], [3, 4, 9, 9]]], np.uint8)
    # (1+2+3+4)/4 = 2.5 rounds half up to 3; (5+7+9+9)/4 = 7.5 → 8
    np.testing.assert_array_equal(downsample(block, labels=False), [[3, 8]])
    two = np.stack([block[0], block[0] + 1])  # 2×2×2 blocks: (10 + 14) / 8 = 3
    np.testing.assert_array_equal(downsample(two, labels=False), [[3, 8]])


def test_image_mean_of_odd_sizes_repeats_the_edge() -> None:
    plane = np.array([[0, 4, 8], [4, 8, 12], [8, 12, 16]], np.uint16)
    # padded to 4×4 by repeating the last row and column:
    # [[0 4 8 8] [4 8 12 12] [8 12 16 16] [8 12 16 16]]
    np.testing.assert_array_equal(downsample(plane[None], labels=False), [[4, 10], [10, 16]])


def test_image_mean_cannot_overflow_and_keeps_the_dtype() -> None:
    block = np.full((2, 5, 3), 65535, np.uint16)
    result = downsample(block, labels=False)
    assert result.dtype == np.uint16 and result.shape == (3, 2)
    assert (result == 65535).all()
    probabilities = np.array([[[0.0, 1.0], [0.5, 0.25]]], np.float32)
    np.testing.assert_allclose(downsample(probabilities, labels=False), [[0.4375]])


def test_labels_are_strided_never_averaged() -> None:
    labels = np.array([[[1, 3, 7], [3, 1, 7], [9, 9, 2]], [[5, 5, 5], [5, 5, 5], [5, 5, 5]]], "u4")
    result = downsample(labels, labels=True)
    np.testing.assert_array_equal(result, [[1, 7], [9, 2]])  # the first slice, every other voxel
    assert result.dtype == np.uint32
    assert set(np.unique(result)) <= set(np.unique(labels))
    assert not np.shares_memory(result, labels)


def test_downsample_leaves_its_input_alone() -> None:
    block = np.arange(2 * 5 * 7, dtype=np.uint8).reshape(2, 5, 7)
    before = block.copy()
    downsample(block, labels=False)
    downsample(block, labels=True)
    np.testing.assert_array_equal(block, before)


def reference_pyramid(volume: np.ndarray, levels: list[Level], labels: bool) -> list[np.ndarray]:
    """Each level computed from the whole previous level at once, as a check."""
    result = [volume]
    for previous, level in itertools.pairwise(levels):
        k = level.scale[0] // previous.scale[0]
        below = result[-1]
        planes = [downsample(below[z : z + k], labels) for z in range(0, below.shape[0], k)]
        result.append(np.stack(planes))
    return result


@pytest.mark.parametrize("kind", ["image", "segmentation"])
def test_pyramid_writer_builds_every_level(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 60000, (9, 601, 530), dtype=np.uint16)
    if kind == "segmentation":
        volume = volume.astype(np.uint32) * 1000  # ids above 2¹⁶
    writer = PyramidWriter(tmp_path / "l.zarr", volume.shape, volume.dtype.name, kind, (8, 8, 8))
    for plane in volume:
        writer.write(plane)
    writer.close()
    assert shapes(writer.levels) == [(9, 601, 530), (5, 301, 265), (3, 151, 133)]
    expected = reference_pyramid(volume, writer.levels, labels=kind == "segmentation")
    for level, want in zip(writer.levels, expected, strict=True):
        stored = open_level(tmp_path / "l.zarr", level.path)
        assert stored.shape == level.shape
        assert stored.chunks == (1, min(TILE, level.shape[1]), min(TILE, level.shape[2]))
        np.testing.assert_array_equal(stored[:], want)
    if kind == "segmentation":
        strided = open_level(tmp_path / "l.zarr", "2")[:]
        np.testing.assert_array_equal(strided, volume[::4, ::4, ::4])


def test_pyramid_metadata_for_other_viewers(tmp_path: Path) -> None:
    writer = PyramidWriter(tmp_path / "l.zarr", (4, 600, 600), "uint8", "image", (50, 4, 4))
    for _ in range(4):
        writer.write(np.zeros((600, 600), np.uint8))
    writer.close()
    attrs = zarr.open_group(tmp_path / "l.zarr", mode="r").attrs.asdict()
    assert attrs["unem"] == {"kind": "image", "voxel_size": [50, 4, 4]}
    levels = attrs["multiscales"][0]["datasets"]
    scales = [level["coordinateTransformations"][0]["scale"] for level in levels]
    assert scales == [[50.0, 4.0, 4.0], [50.0, 8.0, 8.0], [50.0, 16.0, 16.0]]


def generated_source(n: int, size: int) -> StackSource:
    """A stack that exists only as it is read: each slice is made on the fly."""

    def read(z: int) -> np.ndarray:
        plane = np.empty((size, size), np.uint8)
        plane[:] = ((np.arange(size) + z) % 256).astype(np.uint8)[None, :]
        return plane

    return StackSource("generated stack", (n, size, size), "uint8", read)


@pytest.mark.parametrize(
    "n_slices", [64, pytest.param(1000, marks=pytest.mark.slow, id="1000-slices")]
)
def test_import_memory_stays_bounded(tmp_path: Path, n_slices: int) -> None:
    """A stack of n 1 MiB slices imports with a peak of a few write blocks, whatever n."""
    ws = Workspace(tmp_path / "ws")
    slice_bytes = 1024 * 1024
    source = generated_source(n_slices, 1024)
    tracemalloc.start()
    try:
        dataset = import_dataset(ws, "big", {"image": source}, (10, 10, 10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # per level a block being gathered and its stacked copy; two queued, one being written
    levels = len(plan_levels((n_slices, 1024, 1024), (10, 10, 10)))
    bound = (2 * levels + 3) * BLOCK_BYTES + 8 * slice_bytes
    assert peak < bound, f"peak {peak / slice_bytes:.1f} slices"
    image = dataset.layer("image")
    assert image.levels[-1].shape == ((n_slices + 3) // 4, 256, 256)
    np.testing.assert_array_equal(open_level(image.path)[37], source.read(37))
