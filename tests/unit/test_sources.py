"""Opening stacks: every supported format, natural slice order, and bad input named clearly."""

from __future__ import annotations

import tracemalloc
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from tests.conftest import ISBI_IMAGES, MEDULLA
from unem.errors import BadInput
from unem.volumes.sources import (
    HandleReader,
    StackSource,
    array_source,
    natural_key,
    open_source,
)


def stack(shape: tuple[int, int, int] = (4, 6, 5), dtype: str = "uint8") -> np.ndarray:
    """A stack whose every voxel differs from its neighbours, so mix-ups show."""
    values = np.arange(int(np.prod(shape)), dtype=np.uint64) * 7919
    return (values % np.iinfo(dtype).max).astype(dtype).reshape(shape)


def write_pngs(folder: Path, volume: np.ndarray, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for z, plane in enumerate(volume):
        Image.fromarray(plane).save(folder / (names[z] if names else f"{z}.png"))
    return folder


def read_all(source: StackSource) -> np.ndarray:
    return np.stack(list(source.slices()))


def test_natural_order_puts_2_before_10(tmp_path: Path) -> None:
    names = ["10.png", "2.png", "1.png", "slice_0.png"]
    volume = np.stack([np.full((3, 4), v, np.uint8) for v in (10, 2, 1, 0)])
    write_pngs(tmp_path / "slices", volume, names)
    source = open_source(tmp_path / "slices")
    assert [int(plane[0, 0]) for plane in source.slices()] == [1, 2, 10, 0]
    assert sorted([Path("b10.png"), Path("B9.png")], key=natural_key)[0].name == "B9.png"


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_png_folder_keeps_bit_depth(tmp_path: Path, dtype: str) -> None:
    volume = stack(dtype=dtype)
    source = open_source(write_pngs(tmp_path / "png", volume))
    assert (source.shape, source.dtype) == (volume.shape, dtype)
    np.testing.assert_array_equal(read_all(source), volume)


def test_tiff_folder_and_hidden_files_skipped(tmp_path: Path) -> None:
    volume = stack(dtype="uint16")
    folder = tmp_path / "tif"
    folder.mkdir()
    for z, plane in enumerate(volume):
        tifffile.imwrite(folder / f"s{z}.tif", plane)
    (folder / "._s0.tif").write_bytes(b"macOS resource fork, not an image")
    (folder / "notes.txt").write_text("ignored")
    source = open_source(folder)
    assert source.shape == volume.shape
    np.testing.assert_array_equal(read_all(source), volume)


def test_multipage_tiff(tmp_path: Path) -> None:
    volume = stack((5, 7, 6), "uint16")
    tifffile.imwrite(tmp_path / "v.tif", volume, compression="zlib", photometric="minisblack")
    source = open_source(tmp_path / "v.tif")
    assert (source.shape, source.dtype) == ((5, 7, 6), "uint16")
    np.testing.assert_array_equal(source.read(3), volume[3])  # out of order, then in order
    np.testing.assert_array_equal(read_all(source), volume)
    source.close()


def test_hdf5_picks_the_only_array_or_the_key(tmp_path: Path) -> None:
    volume = stack()
    with h5py.File(tmp_path / "one.h5", "w") as file:
        file.create_dataset("raw", data=volume)
        file.create_dataset("scalar", data=3)  # not a stack: ignored
    np.testing.assert_array_equal(read_all(open_source(tmp_path / "one.h5")), volume)
    with h5py.File(tmp_path / "two.h5", "w") as file:
        file.create_dataset("volumes/raw", data=volume)
        file.create_dataset("volumes/labels", data=volume.astype("uint32") + 1)
    with pytest.raises(BadInput, match=r"two\.h5 holds several arrays .*volumes/labels"):
        open_source(tmp_path / "two.h5")
    labels = open_source(tmp_path / "two.h5", key="volumes/labels")
    assert labels.dtype == "uint32"
    np.testing.assert_array_equal(read_all(labels), volume + 1)
    with pytest.raises(BadInput, match=r"two\.h5 has no 2D or 3D array 'nope'"):
        open_source(tmp_path / "two.h5", key="nope")


def test_npy_memory_mapped_and_big_endian(tmp_path: Path) -> None:
    volume = stack(dtype="uint16")
    np.save(tmp_path / "v.npy", volume.astype(">u2"))
    source = open_source(tmp_path / "v.npy")
    assert source.dtype == "uint16"  # the byte order is the file's business, not the user's
    np.testing.assert_array_equal(read_all(source), volume)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_streams_slices_in_any_order(tmp_path: Path, save: object) -> None:
    volume = stack((6, 5, 4), "uint16")
    save(tmp_path / "v.npz", stack=volume)  # type: ignore[operator]
    source = open_source(tmp_path / "v.npz")
    assert (source.shape, source.dtype) == (volume.shape, "uint16")
    for z in (4, 1, 5, 0, 0, 2):  # backwards reads rewind the member
        np.testing.assert_array_equal(source.read(z), volume[z])
    np.testing.assert_array_equal(read_all(source), volume)
    source.close()


def test_npz_headers_only_key_and_fortran_order(tmp_path: Path) -> None:
    volume = stack()
    np.savez(tmp_path / "two.npz", raw=volume, ids=np.asfortranarray(volume.astype("int32")))
    with pytest.raises(BadInput, match=r"two\.npz holds several arrays"):
        open_source(tmp_path / "two.npz")
    ids = open_source(tmp_path / "two.npz", key="ids")
    assert ids.dtype == "int32"
    np.testing.assert_array_equal(read_all(ids), volume)


def test_npz_member_cut_short_names_the_file(tmp_path: Path) -> None:
    header = np.lib.format.header_data_from_array_1_0(stack())
    with (
        zipfile.ZipFile(tmp_path / "short.npz", "w") as archive,
        archive.open("stack.npy", "w") as file,
    ):
        np.lib.format.write_array_header_1_0(file, header)
        file.write(stack()[:2].tobytes())  # two of four slices
    source = open_source(tmp_path / "short.npz")
    source.read(1)
    with pytest.raises(BadInput, match=r"short\.npz.*slice 2 cannot be read"):
        source.read(2)


def test_zarr_array_and_pyramid_group(tmp_path: Path) -> None:
    volume = stack()
    zarr.create_array(tmp_path / "a.zarr", data=volume, chunks=(1, 6, 5))
    np.testing.assert_array_equal(read_all(open_source(tmp_path / "a.zarr")), volume)
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("0", data=volume, chunks=(1, 6, 5))
    group.create_array("1", data=volume[:, ::2, ::2], chunks=(1, 3, 3))
    np.testing.assert_array_equal(read_all(open_source(tmp_path / "g.zarr")), volume)
    level1 = open_source(tmp_path / "g.zarr", key="1")
    np.testing.assert_array_equal(read_all(level1), volume[:, ::2, ::2])


def test_single_image_and_2d_arrays_are_one_slice(tmp_path: Path) -> None:
    plane = stack()[0]
    Image.fromarray(plane).save(tmp_path / "one.png")
    np.save(tmp_path / "one.npy", plane)
    for name in ("one.png", "one.npy"):
        source = open_source(tmp_path / name)
        assert source.shape == (1, *plane.shape)
        np.testing.assert_array_equal(source.read(0), plane)


def test_rgb_slices_are_reported_as_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "rgb"
    folder.mkdir()
    for z in range(2):
        Image.fromarray(np.full((4, 5, 3), z, np.uint8)).save(folder / f"{z}.png")
    source = open_source(folder)
    assert (source.shape, source.dtype) == ((2, 4, 5), "rgb")
    assert source.read(1).shape == (4, 5, 3)


# --- bad input: refused with the file named ------------------------------------------------


def test_missing_path_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"nothing\.tif does not exist"):
        open_source(tmp_path / "nothing.tif")
    (tmp_path / "stack.foo").write_bytes(b"?")
    with pytest.raises(BadInput, match=r"stack\.foo: unsupported file type \.foo"):
        open_source(tmp_path / "stack.foo")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(BadInput, match=r"empty holds no PNG, TIFF or JPEG slices"):
        open_source(tmp_path / "empty")


def test_corrupt_slice_is_named_before_any_pixel_is_read(tmp_path: Path) -> None:
    folder = write_pngs(tmp_path / "s", stack())
    (folder / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with pytest.raises(BadInput, match=r"2\.png cannot be read as an image"):
        open_source(folder)


def test_truncated_slice_is_named_when_read(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (3, 64, 64), np.uint8)
    folder = write_pngs(tmp_path / "s", noise)
    data = (folder / "1.png").read_bytes()
    (folder / "1.png").write_bytes(data[: len(data) // 2])  # the header survives
    source = open_source(folder)
    source.read(0)
    with pytest.raises(BadInput, match=r"1\.png cannot be read as an image"):
        source.read(1)


def test_mixed_slice_sizes(tmp_path: Path) -> None:
    folder = write_pngs(tmp_path / "s", stack())
    Image.fromarray(np.zeros((6, 4), np.uint8)).save(folder / "3.png")
    with pytest.raises(BadInput, match=r"3\.png is 4×6 but 0\.png is 5×6"):
        open_source(folder)


def test_mixed_bit_depths(tmp_path: Path) -> None:
    folder = write_pngs(tmp_path / "s", stack())
    Image.fromarray(stack(dtype="uint16")[1]).save(folder / "1.png")
    with pytest.raises(BadInput, match=r"1\.png is uint16 but 0\.png is uint8"):
        open_source(folder)


def test_multipage_file_in_a_slice_folder(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    tifffile.imwrite(folder / "0.tif", stack()[0])
    tifffile.imwrite(folder / "1.tif", stack(), photometric="minisblack")
    with pytest.raises(BadInput, match=r"1\.tif has 4 pages"):
        open_source(folder)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("four.npy", np.zeros((2, 2, 3, 4), np.uint8), r"four\.npy has shape \(2, 2, 3, 4\)"),
        ("empty.npy", np.zeros((0, 3, 4), np.uint8), r"empty\.npy is empty"),
    ],
)
def test_arrays_that_are_not_stacks(
    tmp_path: Path, name: str, array: np.ndarray, message: str
) -> None:
    np.save(tmp_path / name, array)
    with pytest.raises(BadInput, match=message):
        open_source(tmp_path / name)


@pytest.mark.parametrize("suffix", [".tif", ".h5", ".npy", ".npz"])
def test_garbage_files_are_named(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"not what the suffix promises" * 10)
    with pytest.raises(BadInput, match=rf"garbage\{suffix} cannot be read"):
        open_source(path)


def test_reader_errors_become_bad_input_naming_the_slice() -> None:
    def read(z: int) -> np.ndarray:
        raise OSError("disk on fire")

    source = StackSource("generated", (2, 3, 3), "uint8", read)
    with pytest.raises(BadInput, match="generated, slice 1 cannot be read: disk on fire"):
        source.read(1)


def test_handle_reader_opens_once_and_closes() -> None:
    opened: list[object] = []

    class Handle:
        closed = False

        def close(self) -> None:
            self.closed = True

    def open_handle() -> Handle:
        opened.append(Handle())
        return opened[-1]  # type: ignore[return-value]

    reader = HandleReader(open_handle, lambda handle, z: np.full((1, 1), z))
    assert [int(reader(z)[0, 0]) for z in range(3)] == [0, 1, 2]
    assert len(opened) == 1
    reader.close()
    assert opened[0].closed  # type: ignore[attr-defined]
    reader(0)
    assert len(opened) == 2  # reading after close reopens


def test_array_source_in_memory() -> None:
    volume = stack()
    source = array_source(volume)
    assert (source.shape, source.dtype) == (volume.shape, "uint8")
    np.testing.assert_array_equal(read_all(source), volume)


# --- the shared real data ------------------------------------------------------------------


def test_isbi_slice_folder(data: Path) -> None:
    source = open_source(ISBI_IMAGES)
    assert (source.shape, source.dtype) == ((30, 512, 512), "uint8")
    with Image.open(ISBI_IMAGES / "10.png") as image:
        np.testing.assert_array_equal(source.read(10), np.asarray(image))
    labels = open_source(ISBI_IMAGES.parent / "label")
    assert labels.shape == (24, 512, 512)


def test_medulla_grayscale_and_body_labels(data: Path) -> None:
    image = open_source(MEDULLA / "grayscale_maps")
    labels = open_source(MEDULLA / "groundtruth_bodies.tif")
    assert (image.shape, image.dtype) == ((160, 250, 250), "uint8")
    assert (labels.shape, labels.dtype) == ((160, 250, 250), "uint32")
    with Image.open(MEDULLA / "grayscale_maps" / "iso.2612.png") as plane:
        np.testing.assert_array_equal(image.read(12), np.asarray(plane))
    np.testing.assert_array_equal(
        labels.read(100), tifffile.imread(MEDULLA / "groundtruth_bodies.tif", key=100)
    )
    labels.close()


def test_npz_is_read_with_bounded_memory(tmp_path: Path) -> None:
    volume = np.zeros((64, 512, 512), np.uint8)  # 16 MiB, a few KiB once deflated
    volume[:, 100, 100] = np.arange(64)
    np.savez_compressed(tmp_path / "big.npz", stack=volume, other=volume[0])
    del volume
    tracemalloc.start()
    try:
        source = open_source(tmp_path / "big.npz", key="stack")
        assert [int(plane[100, 100]) for plane in source.slices()] == list(range(64))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    source.close()
    assert peak < 8 * 512 * 512, f"peak {peak / 2**20:.1f} MiB for 0.25 MiB slices"
