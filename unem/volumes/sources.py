"""Readers of image stacks: a folder of slices, multi-page TIFF, HDF5, NPY/NPZ and Zarr.

`open_source` checks what it can without reading pixels (file headers: shape, dtype, count),
so bad input is refused before anything is written. Slices are then read one at a time,
keeping memory bounded whatever the stack size.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from unem.errors import BadInput

SLICE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}
TIFF_SUFFIXES = {".tif", ".tiff"}
HDF5_SUFFIXES = {".h5", ".hdf5", ".hdf"}
PIL_MODE_DTYPES = {
    "1": "bool",
    "L": "uint8",
    "P": "uint8",
    "I;16": "uint16",
    "I;16B": "uint16",
    "I;16L": "uint16",
    "I": "int32",
    "F": "float32",
    "RGB": "rgb",
    "RGBA": "rgb",
}
Image.MAX_IMAGE_PIXELS = None  # EM sections are legitimately huge; they are not decompression bombs


@dataclass(frozen=True)
class StackSource:
    """A stack to import: shape (z, y, x), dtype (or "rgb") and a reader of one slice."""

    description: str
    shape: tuple[int, int, int]
    dtype: str
    read_slice: Callable[[int], np.ndarray]

    def slices(self) -> Iterator[np.ndarray]:
        for z in range(self.shape[0]):
            yield self.read_slice(z)


def natural_key(path: Path) -> list[Any]:
    """Sort key putting `2.png` before `10.png`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def open_source(path: Path, key: str | None = None) -> StackSource:
    """Open any supported stack; raise BadInput with the offending file named."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path} does not exist.")
    suffix = path.suffix.lower()
    if path.is_dir() and (suffix == ".zarr" or (path / "zarr.json").exists()
                          or (path / ".zarray").exists() or (path / ".zgroup").exists()):
        return open_zarr(path, key)
    if path.is_dir():
        return open_slice_folder(path)
    openers: dict[str, Callable[[Path, str | None], StackSource]] = {
        **{s: open_tiff for s in TIFF_SUFFIXES},
        **{s: open_hdf5 for s in HDF5_SUFFIXES},
        ".npy": open_npy,
        ".npz": open_npz,
        ".png": open_single_image,
        ".jpg": open_single_image,
        ".jpeg": open_single_image,
    }
    if suffix not in openers:
        raise BadInput(f"{path.name}: unsupported file type {suffix or '(none)'}.")
    return openers[suffix](path, key)


def slice_header(path: Path) -> tuple[tuple[int, int], str, int]:
    """(height, width), dtype and page count of one image file, read from its header."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                shape, dtype = page.shape, str(page.dtype) if page.dtype is not None else "?"
                if page.samplesperpixel in (3, 4):
                    return (shape[0], shape[1]), "rgb", len(tif.pages)
                return (shape[-2], shape[-1]), dtype, len(tif.pages)
        with Image.open(path) as image:
            dtype = PIL_MODE_DTYPES.get(image.mode, image.mode)
            return (image.height, image.width), dtype, getattr(image, "n_frames", 1)
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise BadInput(f"{path.name} cannot be read as an image: {error}") from error


def read_image_file(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            array = tifffile.imread(path, key=0)
        else:
            with Image.open(path) as image:
                array = np.asarray(image.convert("L") if image.mode == "P" else image)
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise BadInput(f"{path.name} cannot be read as an image: {error}") from error
    return array


def open_slice_folder(folder: Path) -> StackSource:
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SLICE_SUFFIXES),
        key=natural_key,
    )
    if not files:
        raise BadInput(f"{folder} holds no PNG, TIFF or JPEG slices.")
    first_shape, first_dtype, _ = slice_header(files[0])
    for path in files:
        shape, dtype, pages = slice_header(path)
        if pages > 1:
            raise BadInput(f"{path.name} has {pages} pages; a slice folder needs one image per file.")
        if shape != first_shape:
            raise BadInput(
                f"{path.name} is {shape[1]}×{shape[0]} but {files[0].name} is "
                f"{first_shape[1]}×{first_shape[0]}: all slices must have the same size."
            )
        if dtype != first_dtype:
            raise BadInput(
                f"{path.name} is {dtype} but {files[0].name} is {first_dtype}: "
                "all slices must have the same type."
            )

    def read(z: int) -> np.ndarray:
        array = read_image_file(files[z])
        if array.shape[:2] != first_shape:
            raise BadInput(f"{files[z].name} changed size while importing.")
        return array

    return StackSource(
        f"{len(files)} slices in {folder}", (len(files), *first_shape), first_dtype, read
    )


def open_single_image(path: Path, key: str | None = None) -> StackSource:
    shape, dtype, _ = slice_header(path)
    return StackSource(str(path), (1, *shape), dtype, lambda z: read_image_file(path))


def open_tiff(path: Path, key: str | None = None) -> StackSource:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = series.shape, str(series.dtype)
            rgb = series.axes.endswith("S")
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise BadInput(f"{path.name} cannot be read as a TIFF: {error}") from error
    if rgb:
        shape, dtype = shape[:-1], "rgb"
    volume_shape = _as_volume_shape(path, shape)

    def read(z: int) -> np.ndarray:
        # One page per slice; tifffile opens the file each time so no handle stays open
        # between slices (and a handle is never shared by threads).
        try:
            return tifffile.imread(path, key=z) if volume_shape[0] > 1 else tifffile.imread(path)
        except (OSError, ValueError, tifffile.TiffFileError) as error:
            raise BadInput(f"{path.name}, page {z}: {error}") from error

    return StackSource(f"multi-page TIFF {path}", volume_shape, dtype, read)


def _as_volume_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 2:
        return (1, shape[0], shape[1])
    if len(shape) == 3:
        return (shape[0], shape[1], shape[2])
    raise BadInput(f"{path.name} has shape {shape}; expected a 2D image or a 3D (z, y, x) stack.")


def _pick_key(path: Path, key: str | None, candidates: list[str]) -> str:
    if key is not None:
        if key not in candidates:
            raise BadInput(f"{path.name} has no array {key!r}; it has {', '.join(candidates)}.")
        return key
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BadInput(f"{path.name} holds no 2D or 3D array.")
    raise BadInput(f"{path.name} holds several arrays ({', '.join(candidates)}); name one as key.")


def open_hdf5(path: Path, key: str | None = None) -> StackSource:
    import h5py

    try:
        with h5py.File(path, "r") as file:
            arrays: list[str] = []
            file.visititems(
                lambda name, obj: arrays.append(name)
                if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3)
                else None
            )
            name = _pick_key(path, key, arrays)
            shape, dtype = file[name].shape, str(file[name].dtype)
    except OSError as error:
        raise BadInput(f"{path.name} cannot be read as HDF5: {error}") from error
    volume_shape = _as_volume_shape(path, shape)

    def read(z: int) -> np.ndarray:
        with h5py.File(path, "r") as file:
            dataset = file[name]
            return np.asarray(dataset[z] if dataset.ndim == 3 else dataset[()])

    return StackSource(f"HDF5 {path}:{name}", volume_shape, dtype, read)


def open_npy(path: Path, key: str | None = None) -> StackSource:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BadInput(f"{path.name} cannot be read as NPY: {error}") from error
    return _array_source(f"NPY {path}", path, array)


def open_npz(path: Path, key: str | None = None) -> StackSource:
    try:
        with np.load(path, allow_pickle=False) as npz:
            with zipfile.ZipFile(path) as archive:
                names = [n.removesuffix(".npy") for n in archive.namelist()]
            name = _pick_key(path, key, [n for n in names if npz[n].ndim in (2, 3)])
            array = npz[name]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise BadInput(f"{path.name} cannot be read as NPZ: {error}") from error
    return _array_source(f"NPZ {path}:{name}", path, array)


def open_zarr(path: Path, key: str | None = None) -> StackSource:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Group):
            arrays = sorted(name for name, _ in node.arrays())
            node = node[_pick_key(path, key, arrays if key else (["0"] if "0" in arrays else arrays))]
    except (OSError, ValueError, KeyError) as error:
        raise BadInput(f"{path.name} cannot be read as Zarr: {error}") from error
    return _array_source(f"Zarr {path}", path, node)


def _array_source(description: str, path: Path, array: Any) -> StackSource:
    """A source over an array-like indexable by z (numpy memmap, zarr array)."""
    volume_shape = _as_volume_shape(path, tuple(array.shape))
    two_d = len(array.shape) == 2
    return StackSource(
        description,
        volume_shape,
        str(array.dtype),
        lambda z: np.asarray(array[...] if two_d else array[z]),
    )


def array_source(array: np.ndarray, description: str = "array in memory") -> StackSource:
    """A source over a numpy array already in memory (generated data, tests)."""
    return _array_source(description, Path(description), array)
