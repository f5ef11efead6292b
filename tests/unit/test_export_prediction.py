"""Prediction layers as files and tiles: 8-bit PNG slices, 16-bit TIFF (probabilities scaled
by the `dtype` option), float predictions, labels never scaled; tiles on a fixed scale."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unem.cli import main
from unem.errors import BadInput
from unem.proofread.exporting import export_current
from unem.volumes import export
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source
from unem.volumes.tiles import TileAddress, render_tile
from unem.workspace import Workspace

SHAPE = (3, 20, 30)


def prediction_dataset(ws: Workspace, prediction: np.ndarray, name: str = "pred") -> Dataset:
    sources = {
        "image": array_source(np.full(prediction.shape, 100, np.uint8)),
        "prediction": array_source(prediction),
        "segmentation": array_source((np.arange(np.prod(SHAPE)) % 300).reshape(SHAPE)),
    }
    return import_dataset(ws, name, sources, (40.0, 4.0, 4.0))


def probabilities() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 255, SHAPE, np.uint8, endpoint=True)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def png_slices(folder: Path) -> tuple[list[str], np.ndarray]:
    modes, arrays = [], []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as picture:
            modes.append(picture.mode)
            arrays.append(np.asarray(picture))
    return modes, np.stack(arrays)


def test_an_8_bit_prediction_exports_as_8_bit_png_slices(workspace: Workspace, out: Path) -> None:
    prob = probabilities()
    layer = prediction_dataset(workspace, prob).layer("prediction")
    modes, back = png_slices(export.export_layer(layer, "png", out / "png"))
    assert modes == ["L"] * 3 and back.dtype == np.uint8
    np.testing.assert_array_equal(back, prob)


@pytest.mark.parametrize("fmt", ["tiff", "tiff-multipage"])
def test_an_8_bit_prediction_exports_as_16_bit_tiff(
    workspace: Workspace, out: Path, fmt: str
) -> None:
    prob = probabilities()
    layer = prediction_dataset(workspace, prob).layer("prediction")
    target = export.export_layer(layer, fmt, out / f"p-{fmt}", dtype="uint16")
    if fmt == "tiff":
        back = np.stack([tifffile.imread(p) for p in sorted(target.iterdir())])
    else:
        back = tifffile.imread(target)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, prob.astype(np.uint16) * 257)  # 255 → 65535
    plain = tifffile.imread(export.export_layer(layer, "tiff-multipage", out / "as-stored.tif"))
    assert plain.dtype == np.uint8 and np.array_equal(plain, prob)  # no dtype: as stored


def test_float_and_16_bit_predictions_convert_on_their_scale(
    workspace: Workspace, out: Path
) -> None:
    values = np.linspace(0, 1, int(np.prod(SHAPE)), dtype=np.float32).reshape(SHAPE)
    floats = prediction_dataset(workspace, values, "floats").layer("prediction")
    modes, eight = png_slices(export.export_layer(floats, "png", out / "f8", dtype="uint8"))
    assert modes == ["L"] * 3 and eight.max() == 255
    np.testing.assert_array_equal(eight, np.rint(values * 255).astype(np.uint8))
    modes, sixteen = png_slices(export.export_layer(floats, "png", out / "f16", dtype="uint16"))
    assert modes == ["I;16"] * 3
    np.testing.assert_array_equal(sixteen, np.rint(values.astype(np.float64) * 65535))
    wide = probabilities().astype(np.uint16) * 257
    down = prediction_dataset(workspace, wide, "wide").layer("prediction")
    _, narrow = png_slices(export.export_layer(down, "png", out / "w8", dtype="uint8"))
    np.testing.assert_array_equal(narrow, probabilities())


def test_labels_keep_their_ids_and_must_fit(workspace: Workspace, out: Path) -> None:
    dataset = prediction_dataset(workspace, probabilities())
    labels = dataset.layer("segmentation")
    back = np.load(export.export_layer(labels, "npy", out / "l.npy", dtype="uint16"))
    assert back.dtype == np.uint16 and back.max() == 299  # not scaled
    with pytest.raises(BadInput, match="ids up to 299: they do not fit uint8"):
        export.export_layer(labels, "tiff", out / "l8", dtype="uint8")
    with pytest.raises(BadInput, match="Unknown export type 'float16'"):
        export.export_layer(labels, "tiff", out / "lf", dtype="float16")
    assert sorted(p.name for p in out.iterdir()) == ["l.npy"]  # nothing half-written


def test_export_current_and_the_command_line_take_the_dtype(
    workspace: Workspace, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prob = probabilities()
    dataset = prediction_dataset(workspace, prob)
    target = export_current(
        workspace, dataset.id, "prediction", "npz", out / "p.npz", dtype="uint16"
    )
    assert np.load(target)["stack"].dtype == np.uint16
    code = main(
        [
            "export",
            dataset.id,
            "prediction",
            str(out / "cli.tif"),
            "--dtype",
            "uint16",
            "--workspace",
            str(workspace.root),
        ]
    )
    assert code == 0 and "Wrote" in capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(out / "cli.tif"), prob.astype(np.uint16) * 257)


def tile_values(dataset: Dataset, fmt: str = "png") -> np.ndarray:
    body, media = render_tile(dataset.layer("prediction"), TileAddress(0, 1, 0, 0), fmt)
    assert media == f"image/{fmt}"
    with Image.open(io.BytesIO(body)) as picture:
        assert picture.mode == "L"
        return np.asarray(picture)


def test_prediction_tiles_are_8_bit_on_a_fixed_scale(workspace: Workspace) -> None:
    prob = probabilities()
    np.testing.assert_array_equal(tile_values(prediction_dataset(workspace, prob, "u8")), prob[1])
    wide = prediction_dataset(workspace, prob.astype(np.uint16) * 257, "u16")
    np.testing.assert_array_equal(tile_values(wide), prob[1])
    # A faint float prediction stays faint: never stretched to the layer's own range.
    faint = prediction_dataset(workspace, (prob / 255.0 * 0.2).astype(np.float32), "faint")
    assert tile_values(faint).max() == 51
    np.testing.assert_allclose(tile_values(faint), np.rint(prob[1] * 0.2), atol=1)
    assert tile_values(faint, "jpeg").shape == SHAPE[1:]
