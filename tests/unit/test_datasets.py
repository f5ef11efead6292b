"""Importing datasets into a real workspace: layers, rows, atomicity, and refused input."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from tests.conftest import ISBI_IMAGES, MEDULLA
from unem.errors import BadInput, NotFound
from unem.volumes import datasets
from unem.volumes.datasets import import_dataset
from unem.volumes.sources import StackSource, array_source, open_source
from unem.volumes.store import open_level
from unem.workspace import Workspace


def snapshot(ws: Workspace) -> dict[str, Any]:
    """Every file (by content) and folder under the workspace, and every database row.

    The WAL is checkpointed first so that `unem.sqlite` holds all committed data; the -wal
    and -shm files themselves change with every read and are left out.
    """
    ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = {}
    for path in sorted(ws.root.rglob("*")):
        name = str(path.relative_to(ws.root))
        if name.endswith(("-wal", "-shm")):
            continue
        files[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    rows = {table: list(ws.db[table].rows) for table in ws.db.table_names()}
    return {"files": files, "rows": rows}


def write_pngs(folder: Path, volume: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for z, plane in enumerate(volume):
        Image.fromarray(plane).save(folder / f"{z:03d}.png")
    return folder


def volume(shape: tuple[int, int, int] = (5, 40, 30), dtype: str = "uint8") -> np.ndarray:
    rng = np.random.default_rng(sum(shape))
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def labels_of(shape: tuple[int, int, int] = (5, 40, 30), top: int = 70000) -> np.ndarray:
    return np.random.default_rng(7).integers(0, top, shape, dtype=np.uint32)


def stored(layer: datasets.Layer, level: str = "0") -> np.ndarray:
    return np.asarray(open_level(layer.path, level)[:])


# --- successful imports ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_import_png_folder_with_labels(workspace: Workspace, tmp_path: Path, dtype: str) -> None:
    image, labels = volume(dtype=dtype), labels_of()
    tifffile.imwrite(tmp_path / "labels.tif", labels, photometric="minisblack")
    sources = {
        "image": open_source(write_pngs(tmp_path / "image", image)),
        "segmentation": open_source(tmp_path / "labels.tif"),
    }
    dataset = import_dataset(workspace, "Synthetic stack", sources, (40, 4, 4), user="ana")
    assert (dataset.id, dataset.name) == ("synthetic-stack", "Synthetic stack")
    assert dataset.shape == (5, 40, 30)
    assert dataset.voxel_size == (40.0, 4.0, 4.0)
    assert dataset.created_by == "ana"
    assert dataset.layer("image").dtype == dtype
    assert dataset.layer("segmentation").dtype == "uint32"
    np.testing.assert_array_equal(stored(dataset.layer("image")), image)
    np.testing.assert_array_equal(stored(dataset.layer("segmentation")), labels)
    assert datasets.get_dataset(workspace, dataset.id) == dataset  # read back from the rows


def test_rows_and_files_of_an_import(workspace: Workspace) -> None:
    sources = {"image": array_source(volume((3, 300, 280)))}
    dataset = import_dataset(workspace, "rows", sources, (50, 4, 4))
    row = workspace.db["datasets"].get("rows")
    assert json.loads(row["shape"]) == [3, 300, 280]
    assert json.loads(row["voxel_size"]) == [50.0, 4.0, 4.0]
    layer_rows = {r["name"]: r for r in workspace.db["layers"].rows_where("dataset_id = 'rows'")}
    assert set(layer_rows) == {"image", "segmentation"}
    assert layer_rows["segmentation"]["source"] == "empty"
    levels = json.loads(layer_rows["image"]["levels"])
    assert [lv["shape"] for lv in levels] == [[3, 300, 280], [3, 150, 140]]  # z kept: 50 nm ≫ 4
    assert sorted(p.name for p in workspace.dataset_dir("rows").iterdir()) == [
        "image.zarr",
        "segmentation.zarr",
    ]
    attrs = zarr.open_group(dataset.layer("image").path, mode="r").attrs.asdict()
    assert attrs["unem"]["voxel_size"] == [50.0, 4.0, 4.0]
    assert list((workspace.root / "tmp").iterdir()) == []


def test_image_only_dataset_gets_an_empty_segmentation(workspace: Workspace) -> None:
    dataset = import_dataset(workspace, "paint me", {"image": array_source(volume())})
    segmentation = dataset.layer("segmentation")
    assert (segmentation.kind, segmentation.dtype, segmentation.shape) == (
        "segmentation",
        "uint32",
        (5, 40, 30),
    )
    assert not stored(segmentation).any()


def test_layers_are_converted_to_their_stored_type(workspace: Workspace) -> None:
    sources = {
        "image": array_source(volume() > 100),  # a binary image becomes 0/255
        "segmentation": array_source(volume().astype(np.int64)),  # non-negative int64 ids
        "groundtruth": array_source(volume().astype(np.int16)),
        "prediction": array_source(volume().astype(np.float64) / 255),
    }
    dataset = import_dataset(workspace, "kinds", sources)
    dtypes = {name: layer.dtype for name, layer in dataset.layers.items()}
    assert dtypes == {
        "image": "uint8",
        "segmentation": "uint64",
        "groundtruth": "uint32",
        "prediction": "float32",
    }
    assert set(np.unique(stored(dataset.layer("image")))) == {0, 255}
    np.testing.assert_array_equal(stored(dataset.layer("groundtruth")), volume())


def test_colour_coded_labels_become_ids(workspace: Workspace, tmp_path: Path) -> None:
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[:, :2] = (1, 2, 3)
    rgb[1, 3, 3] = (255, 0, 7)
    write_pngs(tmp_path / "colours", rgb)
    sources = {
        "image": array_source(volume((2, 4, 4))),
        "segmentation": open_source(tmp_path / "colours"),
    }
    ids = stored(import_dataset(workspace, "rgb", sources).layer("segmentation"))
    assert ids.dtype == np.uint32
    assert sorted(np.unique(ids)) == [0, (1 << 16) + (2 << 8) + 3, (255 << 16) + 7]


def test_same_name_twice_gets_a_new_id(workspace: Workspace) -> None:
    first = import_dataset(workspace, "Stack!", {"image": array_source(volume())})
    second = import_dataset(workspace, "Stack!", {"image": array_source(volume())})
    assert (first.id, second.id) == ("stack", "stack-2")
    assert {d.id for d in datasets.list_datasets(workspace)} == {"stack", "stack-2"}


def test_progress_counts_every_slice_of_every_layer(workspace: Workspace) -> None:
    steps: list[tuple[int, int]] = []
    sources = {"image": array_source(volume()), "segmentation": array_source(labels_of())}
    import_dataset(workspace, "p", sources, progress=lambda s, t, m="": steps.append((s, t)))
    assert steps[-1] == (10, 10)
    assert [s for s, _ in steps] == sorted(s for s, _ in steps)


def test_rename_and_delete(workspace: Workspace) -> None:
    dataset = import_dataset(workspace, "old name", {"image": array_source(volume())})
    assert datasets.rename_dataset(workspace, dataset.id, "  new name ").name == "new name"
    with pytest.raises(BadInput, match="needs a name"):
        datasets.rename_dataset(workspace, dataset.id, "  ")
    datasets.delete_dataset(workspace, dataset.id)
    assert datasets.list_datasets(workspace) == []
    assert not workspace.dataset_dir(dataset.id).exists()
    assert list(workspace.db["layers"].rows) == []
    with pytest.raises(NotFound, match="old-name"):
        datasets.get_dataset(workspace, dataset.id)
    with pytest.raises(NotFound):
        datasets.delete_dataset(workspace, dataset.id)


def test_isbi_images(workspace: Workspace, data: Path) -> None:
    sources = {"image": open_source(ISBI_IMAGES)}
    dataset = import_dataset(workspace, "ISBI 2012", sources, (50, 4, 4))
    image = dataset.layer("image")
    assert [level.shape for level in image.levels] == [(30, 512, 512), (30, 256, 256)]
    with Image.open(ISBI_IMAGES / "29.png") as last:
        np.testing.assert_array_equal(stored(image)[29], np.asarray(last))


def test_medulla_images_and_bodies(workspace: Workspace, data: Path) -> None:
    sources = {
        "image": open_source(MEDULLA / "grayscale_maps"),
        "segmentation": open_source(MEDULLA / "groundtruth_bodies.tif"),
    }
    dataset = import_dataset(workspace, "medulla", sources, (10, 10, 10))
    bodies = stored(dataset.layer("segmentation"))
    np.testing.assert_array_equal(bodies, tifffile.imread(MEDULLA / "groundtruth_bodies.tif"))
    assert int(bodies.max()) == 135719  # ids kept as they are, not relabelled
    with Image.open(MEDULLA / "grayscale_maps" / "iso.2759.png") as last:
        np.testing.assert_array_equal(stored(dataset.layer("image"))[159], np.asarray(last))


# --- refused input leaves the workspace exactly as it was ------------------------------------

Case = Callable[[Path], dict[str, StackSource]]


def corrupt_slice(tmp: Path) -> dict[str, StackSource]:
    folder = write_pngs(tmp / "image", volume())
    (folder / "002.png").write_bytes(b"garbage")
    return {"image": open_source(folder)}


def truncated_slice(tmp: Path) -> dict[str, StackSource]:
    folder = write_pngs(tmp / "image", volume())
    data = (folder / "003.png").read_bytes()
    (folder / "003.png").write_bytes(data[: len(data) // 2])  # fails only once read
    return {"image": open_source(folder)}


def mixed_sizes(tmp: Path) -> dict[str, StackSource]:
    folder = write_pngs(tmp / "image", volume())
    Image.fromarray(volume((1, 40, 31))[0]).save(folder / "004.png")
    return {"image": open_source(folder)}


def mixed_dtypes(tmp: Path) -> dict[str, StackSource]:
    folder = write_pngs(tmp / "image", volume())
    Image.fromarray(volume(dtype="uint16")[1]).save(folder / "001.png")
    return {"image": open_source(folder)}


def empty_folder(tmp: Path) -> dict[str, StackSource]:
    (tmp / "image").mkdir()
    return {"image": open_source(tmp / "image")}


def isbi_label_count(tmp: Path) -> dict[str, StackSource]:
    return {
        "image": open_source(ISBI_IMAGES),
        "segmentation": open_source(ISBI_IMAGES.parent / "label"),
    }


def mismatched_size(tmp: Path) -> dict[str, StackSource]:
    np.save(tmp / "labels.npy", labels_of((5, 40, 29)))
    return {"image": array_source(volume()), "segmentation": open_source(tmp / "labels.npy")}


def negative_labels(tmp: Path) -> dict[str, StackSource]:
    labels = labels_of().astype(np.int32)
    labels[3, 10, 10] = -4
    tifffile.imwrite(tmp / "labels.tif", labels, photometric="minisblack")
    return {"image": array_source(volume()), "segmentation": open_source(tmp / "labels.tif")}


def float_image(tmp: Path) -> dict[str, StackSource]:
    np.save(tmp / "image.npy", volume().astype(np.float32))
    return {"image": open_source(tmp / "image.npy")}


def unknown_suffix(tmp: Path) -> dict[str, StackSource]:
    (tmp / "image.mrc").write_bytes(b"MRC?")
    return {"image": open_source(tmp / "image.mrc")}


def hdf5_without_key(tmp: Path) -> dict[str, StackSource]:
    with h5py.File(tmp / "both.h5", "w") as file:
        file["raw"] = volume()
        file["labels"] = labels_of()
    return {"image": open_source(tmp / "both.h5")}


def reader_fails_midway(tmp: Path) -> dict[str, StackSource]:
    def read(z: int) -> np.ndarray:
        if z == 3:
            raise OSError("the network share went away")
        return volume()[z]

    return {"image": StackSource("stack on a flaky share", (5, 40, 30), "uint8", read)}


def labels_fail_midway(tmp: Path) -> dict[str, StackSource]:
    """The image is complete; the second layer breaks: the image must go too."""

    def read(z: int) -> np.ndarray:
        if z == 4:
            raise RuntimeError("reader bug")
        return labels_of()[z]

    labels = StackSource("buggy labels", (5, 40, 30), "uint32", read)
    return {"image": array_source(volume()), "segmentation": labels}


BAD_INPUTS: list[tuple[Case, type[Exception], str]] = [
    (corrupt_slice, BadInput, r"002\.png cannot be read as an image"),
    (truncated_slice, BadInput, r"003\.png cannot be read as an image"),
    (mixed_sizes, BadInput, r"004\.png is 31×40 but 000\.png is 30×40"),
    (mixed_dtypes, BadInput, r"001\.png is uint16 but 000\.png is uint8"),
    (empty_folder, BadInput, r"image holds no PNG, TIFF or JPEG slices"),
    (isbi_label_count, BadInput, r"segmentation has 24 slices but the image has 30 \(.*label"),
    (mismatched_size, BadInput, r"segmentation is 29×40 but the image is 30×40 \(.*labels\.npy"),
    (negative_labels, BadInput, r"labels\.tif, slice 3: labels must not be negative \(found -4\)"),
    (float_image, BadInput, r"image\.npy: an image must be 8- or 16-bit grayscale, not float32"),
    (unknown_suffix, BadInput, r"image\.mrc: unsupported file type \.mrc"),
    (hdf5_without_key, BadInput, r"both\.h5 holds several arrays \(labels, raw\); name one"),
    (reader_fails_midway, BadInput, r"flaky share, slice 3 cannot be read: the network share"),
    (labels_fail_midway, RuntimeError, r"reader bug"),
]


@pytest.mark.parametrize(
    ("case", "error", "message"), BAD_INPUTS, ids=[case.__name__ for case, _, _ in BAD_INPUTS]
)
def test_bad_input_changes_nothing(
    workspace: Workspace,
    tmp_path: Path,
    data: Path,
    case: Case,
    error: type[Exception],
    message: str,
) -> None:
    import_dataset(workspace, "kept", {"image": array_source(volume())})  # something to keep
    before = snapshot(workspace)
    (tmp_path / "in").mkdir()
    with pytest.raises(error, match=message):
        import_dataset(workspace, "new", case(tmp_path / "in"), (10, 10, 10))
    assert snapshot(workspace) == before
    assert [d.id for d in datasets.list_datasets(workspace)] == ["kept"]


@pytest.mark.parametrize(
    ("sources", "voxel", "message"),
    [
        ({}, (1, 1, 1), "needs an image"),
        ({"image": 1, "mask": 1}, (1, 1, 1), "Unknown layer kinds: mask"),
        ({"image": 1}, (0, 1, 1), "three positive numbers"),
        ({"image": 1}, (1, 1), "three positive numbers"),
        ({"image": 1}, ("a", 1, 1), "three numbers"),
    ],
)
def test_bad_arguments_change_nothing(
    workspace: Workspace, sources: dict[str, int], voxel: tuple[Any, ...], message: str
) -> None:
    real = {kind: array_source(volume()) for kind in sources}
    before = snapshot(workspace)
    with pytest.raises(BadInput, match=message):
        import_dataset(workspace, "x", real, voxel)
    assert snapshot(workspace) == before


def test_a_failing_commit_leaves_no_folder_and_no_rows(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(workspace)
    real_atomic = workspace.db.atomic
    depth = [0]

    @contextlib.contextmanager
    def commit_fails() -> Iterator[object]:
        """The outermost transaction fails at its end, after the rename (inserts nest)."""
        depth[0] += 1
        try:
            with real_atomic():
                yield workspace.db
                if depth[0] == 1:
                    assert workspace.dataset_dir("doomed").is_dir()  # renamed already
                    raise sqlite3.OperationalError("disk I/O error")
        finally:
            depth[0] -= 1

    monkeypatch.setattr(workspace.db, "atomic", commit_fails)
    with pytest.raises(sqlite3.OperationalError):
        import_dataset(workspace, "doomed", {"image": array_source(volume())})
    monkeypatch.undo()
    assert snapshot(workspace) == before


def test_recover_removes_what_a_crash_left(workspace: Workspace) -> None:
    dataset = import_dataset(workspace, "kept", {"image": array_source(volume())})
    before = snapshot(workspace)
    workspace.new_tmp_dir()  # an import killed while writing
    (workspace.volumes / "orphan").mkdir()  # killed between rename and commit
    removed = workspace.recover([d.id for d in datasets.list_datasets(workspace)])
    assert len(removed) == 2
    assert snapshot(workspace) == before
    assert datasets.get_dataset(workspace, dataset.id).id == "kept"
