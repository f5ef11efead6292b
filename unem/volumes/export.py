"""Export a layer as files: PNG/TIFF stacks, multi-page TIFF, HDF5, NPY, NPZ or Zarr.

Every format streams slice by slice (memory stays bounded) and, except for the colour PNG
rendering of labels and conversions to another `dtype`, re-imports bit-exactly.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path

import numpy as np

from unem.errors import BadInput, Conflict
from unem.progress import Progress, no_progress
from unem.volumes.datasets import Layer
from unem.volumes.sources import pillow_image
from unem.volumes.store import LABEL_KINDS, chunks_for, open_level

FORMATS = {
    "png": "folder of PNG slices (8/16-bit gray)",
    "png-colour": "folder of 8-bit colour PNG slices, one colour per label (for figures)",
    "tiff": "folder of TIFF slices (any type)",
    "tiff-multipage": "one multi-page TIFF",
    "hdf5": "HDF5 file with the dataset 'stack'",
    "npy": "NumPy .npy array",
    "npz": "NumPy .npz archive with the array 'stack'",
    "zarr": "Zarr array (full resolution)",
}
DTYPES = {
    "uint8": "8 bits: images and predictions scaled to 0–255 (a probability 1 is 255)",
    "uint16": "16 bits: images and predictions scaled to 0–65535 (8-bit values × 257)",
}  # label ids are never scaled: they must fit the type
SUFFIXES = {"tiff-multipage": ".tif", "hdf5": ".h5", "npy": ".npy", "npz": ".npz", "zarr": ".zarr"}


def relabelled(array: np.ndarray, relabel: Mapping[int, int]) -> np.ndarray:
    """`array` with each id replaced through `relabel` (ids not in it stay as they are)."""
    ids, inverse = np.unique(array, return_inverse=True)
    mapped = np.array([relabel.get(i, i) for i in ids.tolist()], dtype=array.dtype)
    result: np.ndarray = mapped[inverse].reshape(array.shape)
    return result


def layer_slices(layer: Layer, relabel: Mapping[int, int] | None = None) -> Iterator[np.ndarray]:
    """The layer's full-resolution slices, as a user should see them: with `relabel` (the
    fragment → segment mapping of a proofread segmentation) applied."""
    array = open_level(layer.path)
    for z in range(layer.shape[0]):
        data = np.asarray(array[z])
        yield relabelled(data, relabel) if relabel else data


def default_target(folder: Path, dataset_id: str, layer: Layer, fmt: str) -> Path:
    """A new name in `folder`, stamped with the time: each export of a layer as it is now."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{dataset_id}-{layer.name}-{fmt}-{stamp}"
    target, n = folder / f"{base}{SUFFIXES.get(fmt, '')}", 2
    while target.exists() or target.with_name(target.name + ".zip").exists():
        target, n = folder / f"{base}-{n}{SUFFIXES.get(fmt, '')}", n + 1
    return target


def export_layer(layer: Layer, fmt: str, target: Path, progress: Progress = no_progress,
                 relabel: Mapping[int, int] | None = None, dtype: str | None = None) -> Path:
    """Write `layer` to `target` in format `fmt` (and in `dtype`, see DTYPES, if given);
    refuse to overwrite anything."""
    if fmt not in FORMATS:
        raise BadInput(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    check_dtype(dtype)
    source = layer  # read as stored; `layer` describes what is written
    if dtype:
        layer = dataclasses.replace(layer, dtype=dtype)
    if target.exists():
        raise Conflict(f"{target} already exists; choose another name.")
    if not target.parent.is_dir():
        raise BadInput(f"{target.parent} is not a folder; create it first.")
    writer = WRITERS[fmt]
    check_fits(layer, fmt, relabel)
    # A name of its own, so that two exports to the same target never write into each other.
    partial = target.with_name(f".partial-{uuid.uuid4().hex[:12]}-{target.name}")
    try:
        writer(layer, partial, counted(source, progress, relabel, dtype))
        if target.exists():
            raise Conflict(f"{target} was created while exporting; choose another name.")
        partial.rename(target)
    except BaseException:
        remove(partial)
        raise
    return target


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_fits(layer: Layer, fmt: str, relabel: Mapping[int, int] | None = None) -> None:
    """Refuse, before writing anything, a layer the format cannot hold."""
    if fmt == "png-colour" and layer.kind not in LABEL_KINDS:
        raise BadInput(
            f"Colour PNG export is for label layers (segmentation, groundtruth); "
            f"the {layer.name} layer is a {layer.kind}."
        )
    if fmt != "png" or layer.dtype in {"uint8", "uint16"}:
        return
    if layer.kind not in LABEL_KINDS:
        raise BadInput(
            f"PNG holds 8- or 16-bit values; the {layer.name} layer is {layer.dtype}. "
            "Export it as TIFF, HDF5, NPZ or Zarr."
        )
    # Label ids often fit 16 bits even when stored in 32: then a 16-bit PNG keeps them all.
    top = max(int(np.max(s)) for s in layer_slices(layer, relabel))
    if top > 65535:
        raise BadInput(
            f"PNG holds values up to 65535, but the {layer.name} layer has ids up to {top}. "
            "Export it as TIFF, HDF5, NPZ or Zarr."
        )


def counted(layer: Layer, progress: Progress, relabel: Mapping[int, int] | None,
            dtype: str | None = None) -> Iterator[np.ndarray]:
    total = layer.shape[0]
    for z, array in enumerate(layer_slices(layer, relabel)):
        yield converted(array, layer.kind, dtype, z) if dtype else array
        progress(z + 1, total, "exporting")


def check_dtype(dtype: str | None) -> None:
    if dtype and dtype not in DTYPES:
        raise BadInput(f"Unknown export type {dtype!r}; choose {' or '.join(DTYPES)} (or none: "
                       "as stored).")


def converted(array: np.ndarray, kind: str, dtype: str, z: int = 0) -> np.ndarray:
    """One slice in `dtype`: images and predictions keep their meaning on the new scale
    (uint8 × 257 = uint16; probabilities in [0, 1] × the top value); label ids keep their
    value, and BadInput if they do not fit."""
    if array.dtype == np.dtype(dtype):
        return array
    top = int(np.iinfo(dtype).max)
    if kind in LABEL_KINDS:
        if array.size and int(array.max()) > top:
            raise BadInput(f"Slice {z} has ids up to {int(array.max())}: they do not fit "
                           f"{dtype}. Export the ids as they are stored.")
        return array.astype(dtype)
    if np.issubdtype(array.dtype, np.floating):
        values = np.clip(np.nan_to_num(array.astype(np.float64)), 0, 1) * top
    else:
        values = array.astype(np.float64) * (top / float(np.iinfo(array.dtype).max))
    scaled: np.ndarray = np.rint(values).astype(dtype)
    return scaled


def png_array(array: np.ndarray) -> np.ndarray:
    return array if array.dtype in (np.uint8, np.uint16) else array.astype(np.uint16)


def write_png_stack(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    target.mkdir(parents=True)
    digits = len(str(layer.shape[0] - 1))
    for z, array in enumerate(slices):
        pillow_image().fromarray(png_array(array)).save(target / f"{z:0{digits}d}.png")


def label_colours(array: np.ndarray) -> np.ndarray:
    """A stable pseudo-random colour per label id (0 stays black)."""
    ids = array.astype(np.uint64)
    mixed = (ids * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    rgb = np.stack([(mixed >> np.uint64(s)) & np.uint64(255) for s in (16, 8, 0)], axis=-1)
    rgb[ids == 0] = 0
    return rgb.astype(np.uint8)


def write_colour_png_stack(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    target.mkdir(parents=True)
    digits = len(str(layer.shape[0] - 1))
    for z, array in enumerate(slices):
        pillow_image().fromarray(label_colours(array)).save(target / f"{z:0{digits}d}.png")


def write_tiff_stack(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    import tifffile

    target.mkdir(parents=True)
    digits = len(str(layer.shape[0] - 1))
    for z, array in enumerate(slices):
        tifffile.imwrite(target / f"{z:0{digits}d}.tif", array, compression="zlib")


def write_multipage_tiff(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    import tifffile

    itemsize = np.dtype(layer.dtype).itemsize
    bigtiff = int(np.prod(layer.shape)) * itemsize > 2**31
    # One series fed page by page: writing each slice on its own would make one series
    # per page, which readers (ours included) take as a one-slice stack. Photometric is
    # given because tifffile takes a (3, y, x) stack for planar RGB otherwise.
    with tifffile.TiffWriter(target, bigtiff=bigtiff) as tif:
        tif.write(
            slices,
            shape=layer.shape,
            dtype=layer.dtype,
            photometric="minisblack",
            compression="zlib",
        )


def write_hdf5(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    import h5py

    with h5py.File(target, "w") as file:
        dataset = file.create_dataset(
            "stack",
            shape=layer.shape,
            dtype=layer.dtype,
            chunks=chunks_for(layer.shape),
            compression="gzip",
        )
        for z, array in enumerate(slices):
            dataset[z] = array


def npy_header(layer: Layer) -> dict[str, object]:
    return {"descr": np.dtype(layer.dtype).str, "fortran_order": False, "shape": layer.shape}


def write_npy(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    with target.open("wb") as file:
        np.lib.format.write_array_header_2_0(file, npy_header(layer))
        for array in slices:
            file.write(np.ascontiguousarray(array).tobytes())


def write_npz(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    with (
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("stack.npy", "w", force_zip64=True) as file,
    ):
        np.lib.format.write_array_header_2_0(file, npy_header(layer))
        for array in slices:
            file.write(np.ascontiguousarray(array).tobytes())


def write_zarr(layer: Layer, target: Path, slices: Iterator[np.ndarray]) -> None:
    import zarr

    array = zarr.create_array(
        str(target),
        shape=layer.shape,
        chunks=chunks_for(layer.shape),
        dtype=layer.dtype,
        fill_value=0,
    )
    for z, data in enumerate(slices):
        array[z] = data


WRITERS: dict[str, Callable[[Layer, Path, Iterator[np.ndarray]], None]] = {
    "png": write_png_stack,
    "png-colour": write_colour_png_stack,
    "tiff": write_tiff_stack,
    "tiff-multipage": write_multipage_tiff,
    "hdf5": write_hdf5,
    "npy": write_npy,
    "npz": write_npz,
    "zarr": write_zarr,
}


def zip_folder(folder: Path) -> Path:
    """A zip of an exported folder, for download; written next to it."""
    archive = folder.with_name(folder.name + ".zip")
    if not archive.exists():
        shutil.make_archive(str(folder), "zip", root_dir=folder)
    return archive
