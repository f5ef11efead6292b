"""Export a layer to every format, then import it again: bit-exact except for colour PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ISBI_IMAGES, MEDULLA
from unem.errors import BadInput, Conflict
from unem.volumes import export
from unem.volumes.datasets import Dataset, Layer, import_dataset
from unem.volumes.sources import StackSource, array_source, open_source
from unem.volumes.store import open_level
from unem.workspace import Workspace

EXACT_FORMATS = ["png", "tiff", "tiff-multipage", "hdf5", "npy", "npz", "zarr"]
VOXEL = (50.0, 4.0, 4.0)  # anisotropic, as serial-section EM is


def stored(layer: Layer) -> np.ndarray:
    return np.asarray(open_level(layer.path)[:])


def reimport(ws: Workspace, layer: Layer, path: Path) -> Layer:
    """Import an exported file as a new dataset with a layer of the same kind."""
    source = open_source(path)
    sources: dict[str, StackSource] = {layer.kind: source}
    if layer.kind != "image":
        sources["image"] = array_source(np.zeros(source.shape, np.uint8))
    dataset = import_dataset(ws, f"re-{path.name}", sources, VOXEL)
    return dataset.layer(layer.kind)


def assert_round_trip(ws: Workspace, layer: Layer, fmt: str, folder: Path) -> None:
    target = export.default_target(folder, layer.dataset_id, layer, fmt)
    target = export.export_layer(layer, fmt, target)
    again = reimport(ws, layer, target)
    assert again.dtype == layer.dtype
    assert again.levels == layer.levels
    np.testing.assert_array_equal(stored(again), stored(layer))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder to export into (the workspace fixture lives in tmp_path too)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def synthetic_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Dataset]:
    """One dataset shared by the module's tests; re-imports add datasets beside it."""
    ws = Workspace(tmp_path_factory.mktemp("synthetic") / "ws")
    rng = np.random.default_rng(3)
    shape = (4, 300, 37)  # odd, more than one level, fewer slices than digits matter
    sources = {
        "image": array_source(rng.integers(0, 65535, shape, np.uint16, endpoint=True)),
        "segmentation": array_source(rng.integers(0, 65535, shape, np.uint32, endpoint=True)),
        "groundtruth": array_source(rng.integers(0, 2**40, shape, np.uint64)),
        "prediction": array_source(rng.random(shape, np.float32)),
    }
    return ws, import_dataset(ws, "synthetic", sources, VOXEL)


@pytest.fixture
def synthetic(synthetic_ws: tuple[Workspace, Dataset]) -> Dataset:
    return synthetic_ws[1]


@pytest.mark.parametrize("fmt", EXACT_FORMATS)
@pytest.mark.parametrize("layer", ["image", "segmentation"])
def test_round_trip_16_bit(
    synthetic_ws: tuple[Workspace, Dataset], tmp_path: Path, fmt: str, layer: str
) -> None:
    ws, synthetic = synthetic_ws
    assert_round_trip(ws, synthetic.layer(layer), fmt, tmp_path)


@pytest.mark.parametrize("fmt", [f for f in EXACT_FORMATS if f != "png"])
@pytest.mark.parametrize("layer", ["groundtruth", "prediction"])
def test_round_trip_wide_types(
    synthetic_ws: tuple[Workspace, Dataset], tmp_path: Path, fmt: str, layer: str
) -> None:
    ws, synthetic = synthetic_ws
    assert_round_trip(ws, synthetic.layer(layer), fmt, tmp_path)


@pytest.mark.parametrize("fmt", ["png", "tiff-multipage", "npz"])
def test_round_trip_8_bit_and_single_slice(workspace: Workspace, tmp_path: Path, fmt: str) -> None:
    for shape in ((3, 20, 30), (1, 20, 30)):
        image = np.random.default_rng(5).integers(0, 255, shape, np.uint8, endpoint=True)
        dataset = import_dataset(workspace, f"u8 {shape[0]}", {"image": array_source(image)})
        layer = dataset.layer("image")
        assert layer.dtype == "uint8"
        assert_round_trip(workspace, layer, fmt, tmp_path)


def test_png_slices_are_named_in_order(workspace: Workspace, tmp_path: Path) -> None:
    image = np.arange(12, dtype=np.uint8)[:, None, None] * np.ones((12, 2, 3), np.uint8)
    layer = import_dataset(workspace, "twelve", {"image": array_source(image)}).layer("image")
    target = export.export_layer(layer, "png", tmp_path / "png")
    assert sorted(p.name for p in target.iterdir())[:3] == ["00.png", "01.png", "02.png"]
    with Image.open(target / "11.png") as last:
        assert np.asarray(last)[0, 0] == 11


def test_png_bit_depth_follows_the_values(synthetic: Dataset, out: Path) -> None:
    labels = export.export_layer(synthetic.layer("segmentation"), "png", out / "labels")
    with Image.open(labels / "0.png") as picture:
        assert picture.mode == "I;16"  # uint32 ids that fit 16 bits: a 16-bit PNG
        np.testing.assert_array_equal(
            np.asarray(picture), stored(synthetic.layer("segmentation"))[0]
        )


def test_labels_above_16_bits_are_refused_as_png(synthetic: Dataset, out: Path) -> None:
    with pytest.raises(BadInput, match=r"PNG holds values up to 65535, but the groundtruth .* ids"):
        export.export_layer(synthetic.layer("groundtruth"), "png", out / "gt")
    with pytest.raises(BadInput, match=r"PNG holds 8- or 16-bit values; the prediction"):
        export.export_layer(synthetic.layer("prediction"), "png", out / "p")
    assert list(out.iterdir()) == []  # refused before anything is written


def test_colour_png_is_rgb_and_only_for_labels(synthetic: Dataset, tmp_path: Path) -> None:
    layer = synthetic.layer("segmentation")
    target = export.export_layer(layer, "png-colour", tmp_path / "colours")
    slices = sorted(target.iterdir())
    assert len(slices) == 4
    labels = stored(layer)[2]
    with Image.open(slices[2]) as picture:
        assert picture.mode == "RGB"
        rgb = np.asarray(picture)
    assert rgb.shape == (*labels.shape, 3)
    assert (rgb[labels == 0] == 0).all()
    first = labels.flat[np.flatnonzero(labels)[0]]
    colours = np.unique(rgb[labels == first], axis=0)
    assert len(colours) == 1 and colours.any()  # one id, one colour, not black
    with pytest.raises(BadInput, match=r"Colour PNG export is for label layers .* image"):
        export.export_layer(synthetic.layer("image"), "png-colour", tmp_path / "no")
    assert not (tmp_path / "no").exists()


def test_export_refuses_to_overwrite_or_guess(synthetic: Dataset, out: Path) -> None:
    layer = synthetic.layer("image")
    (out / "taken.tif").write_bytes(b"someone's file")
    with pytest.raises(Conflict, match=r"taken\.tif already exists"):
        export.export_layer(layer, "tiff-multipage", out / "taken.tif")
    assert (out / "taken.tif").read_bytes() == b"someone's file"
    with pytest.raises(BadInput, match=r"missing is not a folder"):
        export.export_layer(layer, "npy", out / "missing" / "x.npy")
    with pytest.raises(BadInput, match=r"Unknown export format 'jpeg'"):
        export.export_layer(layer, "jpeg", out / "x")
    assert sorted(p.name for p in out.iterdir()) == ["taken.tif"]


def test_a_failed_export_leaves_no_partial_file(synthetic: Dataset, out: Path) -> None:
    steps: list[int] = []

    def progress(step: int, total: int, message: str = "") -> None:
        steps.append(step)
        if step == 2:
            raise KeyboardInterrupt  # the user gave up half-way

    with pytest.raises(KeyboardInterrupt):
        export.export_layer(synthetic.layer("image"), "hdf5", out / "x.h5", progress)
    assert steps == [1, 2]
    assert list(out.iterdir()) == []


def test_zip_of_an_exported_folder(synthetic: Dataset, tmp_path: Path) -> None:
    import zipfile

    folder = export.export_layer(synthetic.layer("image"), "tiff", tmp_path / "slices")
    with zipfile.ZipFile(export.zip_folder(folder)) as archive:
        assert sorted(archive.namelist()) == ["0.tif", "1.tif", "2.tif", "3.tif"]


# --- the shared real data ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def medulla(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Dataset]:
    ws = Workspace(tmp_path_factory.mktemp("medulla") / "ws")
    sources = {
        "image": open_source(MEDULLA / "grayscale_maps"),
        "segmentation": open_source(MEDULLA / "groundtruth_bodies.tif"),
    }
    return ws, import_dataset(ws, "medulla", sources, (10, 10, 10))


def slow_unless(fast: set[str], formats: list[str]) -> list[object]:
    """Formats as parameters; those not in `fast` only run with --run-slow (as in CI)."""
    return [f if f in fast else pytest.param(f, marks=pytest.mark.slow) for f in formats]


@pytest.mark.parametrize("fmt", slow_unless({"png", "tiff-multipage"}, EXACT_FORMATS))
def test_medulla_round_trip(
    data: Path, medulla: tuple[Workspace, Dataset], tmp_path: Path, fmt: str
) -> None:
    ws, dataset = medulla
    assert_round_trip(ws, dataset.layer("image"), fmt, tmp_path)
    if fmt == "png":  # 526 body ids up to 135 719: too many for 16 bits
        with pytest.raises(BadInput, match=r"ids up to 135719"):
            export.export_layer(dataset.layer("segmentation"), fmt, tmp_path / "bodies")
    else:
        assert_round_trip(ws, dataset.layer("segmentation"), fmt, tmp_path)


@pytest.fixture(scope="module")
def isbi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Dataset]:
    ws = Workspace(tmp_path_factory.mktemp("isbi") / "ws")
    return ws, import_dataset(ws, "isbi", {"image": open_source(ISBI_IMAGES)}, VOXEL)


@pytest.mark.parametrize("fmt", slow_unless({"png", "hdf5", "npz"}, EXACT_FORMATS))
def test_isbi_round_trip(
    data: Path, isbi: tuple[Workspace, Dataset], tmp_path: Path, fmt: str
) -> None:
    ws, dataset = isbi
    assert_round_trip(ws, dataset.layer("image"), fmt, tmp_path)
