"""Readers of image stacks: a folder of slices, multi-page TIFF, HDF5, NPY/NPZ and Zarr.

`open_source` checks what it can without reading pixels (file headers: shape, dtype, count),
so bad input is refused before anything is written. Slices are then read one at a time,
keeping memory bounded whatever the stack size.
"""

from __future__ import annotations

import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Generic, Protocol, TypeVar

import numpy as np

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
# What a broken or truncated file raises while its pixels are decoded (Pillow raises
# SyntaxError for some broken PNG chunks; zip members raise zlib.error or EOFError).
READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zipfile.BadZipFile, zlib.error)


# tifffile and Pillow are imported where files are read, not when the server starts.
def pillow_image() -> ModuleType:
    """`PIL.Image`, its size guard off: EM sections are legitimately huge, not decompression
    bombs."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


def _nothing() -> None:
    """Release nothing: the source holds no open file between slices."""


@dataclass(frozen=True)
class StackSource:
    """A stack to import: shape (z, y, x), dtype (or "rgb") and a reader of one slice.

    `close` releases a file handle the reader keeps open between slices (reading again
    reopens it); `slice_name` names the file of one slice, for error messages.
    """

    description: str
    shape: tuple[int, int, int]
    dtype: str
    read_slice: Callable[[int], np.ndarray]
    close: Callable[[], None] = _nothing
    slice_name: Callable[[int], str] | None = None

    def where(self, z: int) -> str:
        """The file (and slice) an error at slice `z` is about."""
        return self.slice_name(z) if self.slice_name else f"{self.description}, slice {z}"

    def read(self, z: int) -> np.ndarray:
        """Slice `z`; a file that fails to decode raises BadInput naming it."""
        try:
            return self.read_slice(z)
        except BadInput:
            raise
        except READ_ERRORS as error:
            raise BadInput(f"{self.where(z)} cannot be read: {error}") from error

    def slices(self) -> Iterator[np.ndarray]:
        for z in range(self.shape[0]):
            yield self.read(z)


class _Closable(Protocol):
    def close(self) -> None: ...


H = TypeVar("H", bound=_Closable)


class HandleReader(Generic[H]):
    """Read slices through one handle, opened on first use and kept until `close`.

    Opening a file per slice is slow for formats whose index must be walked from the start
    (multi-page TIFF, compressed NPZ members), and sharing a handle between threads is unsafe,
    hence the lock.
    """

    def __init__(self, open_handle: Callable[[], H], read: Callable[[H, int], np.ndarray]) -> None:
        self._open = open_handle
        self._read = read
        self._handle: H | None = None
        self._lock = threading.Lock()

    def __call__(self, z: int) -> np.ndarray:
        with self._lock:
            if self._handle is None:
                self._handle = self._open()
            return self._read(self._handle, z)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def natural_key(path: Path) -> list[Any]:
    """Sort key putting `2.png` before `10.png`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def is_zarr_folder(path: Path) -> bool:
    markers = ("zarr.json", ".zarray", ".zgroup")
    return path.suffix.lower() == ".zarr" or any((path / m).exists() for m in markers)


def open_source(path: Path, key: str | None = None) -> StackSource:
    """Open any supported stack; raise BadInput with the offending file named."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path} does not exist.")
    if path.is_dir():
        return open_zarr(path, key) if is_zarr_folder(path) else open_slice_folder(path)
    suffix = path.suffix.lower()
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
    import tifffile

    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                shape = page.shape
                dtype = page.dtype.name if page.dtype is not None else "?"
                if page.samplesperpixel in (3, 4):
                    return (shape[0], shape[1]), "rgb", len(tif.pages)
                return (shape[-2], shape[-1]), dtype, len(tif.pages)
        with pillow_image().open(path) as image:
            dtype = PIL_MODE_DTYPES.get(image.mode, image.mode)
            return (image.height, image.width), dtype, getattr(image, "n_frames", 1)
    except READ_ERRORS as error:
        raise BadInput(f"{path} cannot be read as an image: {error}") from error


def read_image_file(path: Path) -> np.ndarray:
    import tifffile

    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return np.asarray(tifffile.imread(path, key=0))
        with pillow_image().open(path) as image:
            return np.asarray(image.convert("L") if image.mode == "P" else image)
    except READ_ERRORS as error:
        raise BadInput(f"{path} cannot be read as an image: {error}") from error


def list_slice_files(folder: Path) -> list[Path]:
    """Image files of a folder in natural order; hidden files (macOS `._x.png`) are skipped."""
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in SLICE_SUFFIXES and not p.name.startswith(".")
        ),
        key=natural_key,
    )


def check_slice_headers(files: list[Path]) -> tuple[tuple[int, int], str]:
    """The common (height, width) and dtype of `files`; BadInput naming the first misfit."""
    first_shape, first_dtype, _ = slice_header(files[0])
    for path in files:
        shape, dtype, pages = slice_header(path)
        if pages > 1:
            raise BadInput(f"{path} has {pages} pages; a slice folder needs one image per file.")
        if shape != first_shape:
            raise BadInput(
                f"{path} is {shape[1]}×{shape[0]} but {files[0].name} is "
                f"{first_shape[1]}×{first_shape[0]}: all slices must have the same size."
            )
        if dtype != first_dtype:
            raise BadInput(
                f"{path} is {dtype} but {files[0].name} is {first_dtype}: "
                "all slices must have the same type."
            )
    return first_shape, first_dtype


def open_slice_folder(folder: Path) -> StackSource:
    files = list_slice_files(folder)
    if not files:
        raise BadInput(f"{folder} holds no PNG, TIFF or JPEG slices.")
    shape, dtype = check_slice_headers(files)

    def read(z: int) -> np.ndarray:
        array = read_image_file(files[z])
        if array.shape[:2] != shape:
            raise BadInput(f"{files[z]} changed size while importing.")
        return array

    return StackSource(
        f"{len(files)} slices in {folder}",
        (len(files), *shape),
        dtype,
        read,
        slice_name=lambda z: str(files[z]),
    )


def open_single_image(path: Path, key: str | None = None) -> StackSource:
    shape, dtype, _ = slice_header(path)
    return StackSource(str(path), (1, *shape), dtype, lambda z: read_image_file(path))


def open_tiff(path: Path, key: str | None = None) -> StackSource:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = series.shape, series.dtype.name
            rgb = series.axes.endswith("S")
    except (*READ_ERRORS, IndexError) as error:
        raise BadInput(f"{path} cannot be read as a TIFF: {error}") from error
    if rgb:
        shape, dtype = shape[:-1], "rgb"
    volume_shape = _as_volume_shape(path, shape)
    # Page z of the first series; the open file caches the pages it has walked through.
    reader = HandleReader(
        lambda: tifffile.TiffFile(path), lambda tif, z: tif.asarray(key=z, series=0)
    )
    return StackSource(f"multi-page TIFF {path}", volume_shape, dtype, reader, reader.close)


def _as_volume_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) not in (2, 3):
        raise BadInput(f"{path} has shape {shape}; expected a 2D image or a 3D (z, y, x) stack.")
    if 0 in shape:
        raise BadInput(f"{path} is empty (shape {shape}).")
    return (1, shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[1], shape[2])


def _pick_key(path: Path, key: str | None, candidates: list[str]) -> str:
    if key is not None:
        if key not in candidates:
            raise BadInput(
                f"{path} has no 2D or 3D array {key!r}; it has {', '.join(candidates) or 'none'}."
            )
        return key
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BadInput(f"{path} holds no 2D or 3D array.")
    raise BadInput(f"{path} holds several arrays ({', '.join(candidates)}); name one as key.")


def open_hdf5(path: Path, key: str | None = None) -> StackSource:
    import h5py

    try:
        with h5py.File(path, "r") as file:
            arrays: list[str] = []
            file.visititems(
                lambda name, obj: (
                    arrays.append(name)
                    if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3)
                    else None
                )
            )
            name = _pick_key(path, key, arrays)
            shape, dtype = file[name].shape, file[name].dtype.name
    except OSError as error:
        raise BadInput(f"{path} cannot be read as HDF5: {error}") from error
    volume_shape = _as_volume_shape(path, shape)

    def read(file: Any, z: int) -> np.ndarray:
        dataset = file[name]
        return np.asarray(dataset[z] if dataset.ndim == 3 else dataset[()])

    reader = HandleReader(lambda: h5py.File(path, "r"), read)
    return StackSource(f"HDF5 {path}:{name}", volume_shape, dtype, reader, reader.close)


def open_npy(path: Path, key: str | None = None) -> StackSource:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except READ_ERRORS as error:
        raise BadInput(f"{path} cannot be read as NPY: {error}") from error
    return _array_source(f"NPY {path}", path, array)


def read_npy_header(file: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    """Shape, dtype and Fortran order of the .npy stream `file`, left just past its header."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise ValueError("it holds Python objects, not numbers")
    return tuple(shape), dtype, bool(fortran)


class NpzMember:
    """One C-order array of an .npz archive, read slice by slice in one pass.

    Members are often deflated (`savez_compressed`), so they cannot be memory-mapped; a
    stream kept open reads the slices in order without ever holding the whole array.
    """

    def __init__(self, path: Path, member: str) -> None:
        self.archive = zipfile.ZipFile(path)
        self.member = member
        self.stream: IO[bytes] | None = None
        self.layout: tuple[tuple[int, ...], np.dtype[Any], bool] = ((), np.dtype("u1"), False)
        self.next_z = 0

    def read(self, z: int) -> np.ndarray:
        if self.stream is None or z < self.next_z:
            self._rewind()
        assert self.stream is not None
        shape, dtype, _ = self.layout
        plane = shape[-2:]
        nbytes = int(np.prod(plane)) * dtype.itemsize
        # Seeking forward in a deflated member decompresses and drops what lies between.
        self.stream.seek(self.stream.tell() + (z - self.next_z) * nbytes)
        buffer = bytearray(nbytes)
        if self.stream.readinto(buffer) != nbytes:  # type: ignore[attr-defined]
            raise EOFError(f"{self.member} ends before slice {z}")
        self.next_z = z + 1
        return np.frombuffer(buffer, dtype=dtype).reshape(plane)

    def _rewind(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = self.archive.open(self.member)
        self.layout = read_npy_header(self.stream)
        self.next_z = 0

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.archive.close()


def npz_arrays(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype[Any], bool]]:
    """The arrays of an .npz archive and their headers, read without loading any data."""
    with zipfile.ZipFile(path) as archive:
        headers = {}
        for member in archive.namelist():
            with archive.open(member) as stream:
                headers[member.removesuffix(".npy")] = read_npy_header(stream)
    return headers


def open_npz(path: Path, key: str | None = None) -> StackSource:
    try:
        headers = npz_arrays(path)
    except READ_ERRORS as error:
        raise BadInput(f"{path} cannot be read as NPZ: {error}") from error
    name = _pick_key(path, key, [n for n, (shape, _, _) in headers.items() if len(shape) in (2, 3)])
    shape, dtype, fortran = headers[name]
    volume_shape = _as_volume_shape(path, shape)
    if fortran:
        # A Fortran-order array is stored z-fastest, so a slice is spread over the whole
        # member: it is loaded at once (rare: numpy writes C order unless told otherwise).
        array = np.load(path, allow_pickle=False)[name]
        return _array_source(f"NPZ {path}:{name}", path, array)
    reader = HandleReader(lambda: NpzMember(path, f"{name}.npy"), NpzMember.read)
    return StackSource(f"NPZ {path}:{name}", volume_shape, dtype.name, reader, reader.close)


def open_zarr(path: Path, key: str | None = None) -> StackSource:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Group):
            arrays = sorted(name for name, _ in node.arrays())
            # A pyramid (ours, OME-NGFF) keeps full resolution in "0".
            default = ["0"] if "0" in arrays else arrays
            node = node[_pick_key(path, key, arrays if key else default)]
    except (*READ_ERRORS, KeyError) as error:
        raise BadInput(f"{path} cannot be read as Zarr: {error}") from error
    return _array_source(f"Zarr {path}", path, node)


def _array_source(description: str, path: Path, array: Any) -> StackSource:
    """A source over an array-like indexable by z (numpy memmap, zarr array)."""
    volume_shape = _as_volume_shape(path, tuple(array.shape))
    two_d = len(array.shape) == 2
    return StackSource(
        description,
        volume_shape,
        np.dtype(array.dtype).name,
        lambda z: np.asarray(array[...] if two_d else array[z]),
    )


def array_source(array: np.ndarray, description: str = "array in memory") -> StackSource:
    """A source over a numpy array already in memory (generated data, tests)."""
    return _array_source(description, Path(description), array)
