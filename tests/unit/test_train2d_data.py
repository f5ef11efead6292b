"""Training data of the 2D trainer: slices, targets, pairing checks, the validation split,
training patches and validation tiles, on small datasets and on ISBI 2012."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ISBI_IMAGES
from unem.errors import BadInput
from unem.proofread import tools
from unem.proofread.edits import forget_proofreader, proofreader
from unem.train2d.data import (
    PatchSampler,
    TrainingData,
    check_layers,
    describe,
    load_training_data,
    make_targets,
    parse_slices,
    split_by_slice,
    validation_batches,
)
from unem.train2d.losses import IGNORE
from unem.train2d.options import AugmentOptions, TrainOptions
from unem.volumes.datasets import Dataset, import_dataset
from unem.volumes.sources import array_source, open_source
from unem.workspace import Workspace

NO_AUGMENT = AugmentOptions(
    flip=0, rotate90=0, elastic=0, brightness_contrast=0, gamma=0, noise=0, blur=0
)


def make_dataset(ws: Workspace, image: np.ndarray, **labels: np.ndarray) -> Dataset:
    sources = {"image": array_source(image, "test image")}
    sources.update({kind: array_source(array, f"test {kind}") for kind, array in labels.items()})
    return import_dataset(ws, "train", sources)


def z_image(shape: tuple[int, int, int] = (5, 40, 30)) -> np.ndarray:
    """Every pixel of slice z is 10·z: channels show which slice they came from."""
    return np.broadcast_to((np.arange(shape[0]) * 10)[:, None, None], shape).astype(np.uint8)


def stripes(shape: tuple[int, int, int] = (5, 40, 30)) -> np.ndarray:
    labels = np.zeros(shape, np.uint32)
    labels[:, :, ::3] = 1
    return labels


def options(dataset: Dataset, **changes: Any) -> TrainOptions:
    return TrainOptions(**{"dataset": dataset.id, "label_layer": "groundtruth", **changes})


# --- slices ---------------------------------------------------------------------------------


def test_parse_slices() -> None:
    assert parse_slices("", 4) == [0, 1, 2, 3]
    assert parse_slices("  ", 2) == [0, 1]
    assert parse_slices("0-2,5", 10) == [0, 1, 2, 5]
    assert parse_slices(" 7 , 1 - 2, 2", 10) == [1, 2, 7]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", "not a slice or a range"),
        ("1,,2", "not a slice or a range"),
        ("-1", "not a slice or a range"),
        ("5-2", "runs backwards"),
        ("0-10", "slice 10 is outside the volume, whose slices are 0-9"),
        ("12", "slice 12 is outside"),
    ],
)
def test_bad_slices_are_refused(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_slices(text, 10)


# --- targets --------------------------------------------------------------------------------

LABELS = np.array([[0, 1, 1, 3], [0, 2, 2, 3], [4, 4, 0, 0]], np.uint32)


def test_binary_targets() -> None:
    expected = [[0, 1, 1, 1], [0, 1, 1, 1], [1, 1, 0, 0]]
    np.testing.assert_array_equal(make_targets(LABELS, "binary", 2), expected)
    np.testing.assert_array_equal(make_targets(LABELS, "foreground", 2), expected)
    np.testing.assert_array_equal(
        make_targets(LABELS, "binary_inverted", 2), 1 - np.array(expected)
    )


def test_class_and_painted_targets() -> None:
    np.testing.assert_array_equal(make_targets(LABELS, "classes", 5), LABELS)
    painted = make_targets(LABELS, "painted", 4)
    x = IGNORE
    np.testing.assert_array_equal(painted, [[x, 0, 0, 2], [x, 1, 1, 2], [3, 3, x, x]])
    assert painted.dtype == np.uint8


def test_membrane_targets_mark_instance_boundaries() -> None:
    labels = np.array([[1, 1, 2], [1, 1, 2], [0, 3, 3]], np.uint32)
    # 1|2 differ across the right column; 1 above 0 and 3; 0 is boundary itself
    expected = [[0, 1, 1], [1, 1, 1], [1, 1, 1]]
    np.testing.assert_array_equal(make_targets(labels, "membrane", 2), expected)
    assert not make_targets(np.full((3, 3), 7, np.uint32), "membrane", 2).any()


def test_ignore_label_is_taken_out_before_the_mapping() -> None:
    targets = make_targets(LABELS, "classes", 4, ignore_label=4)
    np.testing.assert_array_equal(targets[2], [IGNORE, IGNORE, 0, 0])
    assert make_targets(LABELS, "binary", 2, ignore_label=0)[0, 0] == IGNORE


def test_make_targets_leaves_labels_alone() -> None:
    labels = LABELS.copy()
    for mode in ("binary", "binary_inverted", "classes", "painted", "membrane", "foreground"):
        make_targets(labels, mode, 6, ignore_label=3)  # type: ignore[arg-type]
    np.testing.assert_array_equal(labels, LABELS)


@pytest.mark.parametrize(
    ("mode", "n_classes", "message"),
    [
        (
            "classes",
            4,
            "label 4, but the model tells apart 4 classes .0-3.: set the number of classes to 5",
        ),
        (
            "painted",
            3,
            "painted label 4 means class 3, but .* 3 classes .* set the number of classes to 4",
        ),
    ],
)
def test_classes_beyond_n_classes_are_refused(mode: str, n_classes: int, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        make_targets(LABELS, mode, n_classes)  # type: ignore[arg-type]


# --- loading and pairing --------------------------------------------------------------------


def test_load_dense_labels(workspace: Workspace) -> None:
    labels = stripes()
    dataset = make_dataset(workspace, z_image(), groundtruth=labels)
    data = load_training_data(workspace, options(dataset, slices="1-3"))
    assert data.slices == [1, 2, 3]
    assert data.images.shape == data.targets.shape == (3, 40, 30)
    assert data.images.dtype == np.float32 and data.targets.dtype == np.uint8
    np.testing.assert_allclose(data.images[:, 0, 0], [10 / 255, 20 / 255, 30 / 255])
    np.testing.assert_array_equal(data.targets, labels[1:4])
    assert data.scale == 255 and data.channels == 1 and data.notes == []


def test_three_channels_repeat_the_end_slices(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, z_image(), groundtruth=stripes())
    data = load_training_data(workspace, options(dataset, slices="0,2,4", channels=3))
    assert data.stack_channels(0).shape == (40, 30, 3)
    as_z = [np.rint(data.stack_channels(i)[0, 0] * 255 / 10).tolist() for i in range(3)]
    assert as_z == [[0, 0, 1], [1, 2, 3], [3, 4, 4]]


def test_uint16_images_are_scaled_by_their_largest_value(workspace: Workspace) -> None:
    image = z_image().astype(np.uint16) * 100  # 12-bit-like: at most 4000
    dataset = make_dataset(workspace, image, groundtruth=stripes())
    data = load_training_data(workspace, options(dataset))
    assert data.scale == 4000
    assert data.images.max() == 1.0
    np.testing.assert_allclose(data.images[1, 0, 0], 1000 / 4000)


def test_unknown_layer_names_the_layers(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, z_image(), groundtruth=stripes())
    with pytest.raises(BadInput, match="no layer 'labels'; choose the label layer among: "):
        load_training_data(workspace, options(dataset, label_layer="labels"))
    with pytest.raises(BadInput, match="no layer 'raw'; choose the image layer"):
        load_training_data(workspace, options(dataset, image_layer="raw"))


def test_label_layer_as_image_is_refused(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, z_image(), groundtruth=stripes())
    with pytest.raises(BadInput, match="not images: choose an image layer"):
        load_training_data(workspace, options(dataset, image_layer="segmentation"))
    with pytest.raises(BadInput, match="both 'image'"):
        load_training_data(workspace, options(dataset, label_layer="image"))


def test_layers_of_different_shapes_are_refused(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, z_image(), groundtruth=stripes())
    other = make_dataset(workspace, z_image((5, 20, 30)), groundtruth=stripes((5, 20, 30)))
    mixed = Dataset(
        **{
            **dataset.__dict__,
            "layers": {
                "image": dataset.layers["image"],
                "groundtruth": other.layers["groundtruth"],
            },
        }
    )
    with pytest.raises(
        BadInput,
        match="is 5 slices of 40×30 but layer 'groundtruth' is 5 "
        "slices of 20×30: the image and its labels must cover the same voxels",
    ):
        check_layers(mixed, "image", "groundtruth")


def test_empty_labels_ask_for_painting(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, z_image())  # gets an empty segmentation layer
    with pytest.raises(BadInput, match=r"no labels on any slice .* paint some labels in Dojo"):
        load_training_data(workspace, options(dataset, label_layer="segmentation"))
    labels = stripes()
    labels[:2] = 0
    dataset = make_dataset(workspace, z_image(), groundtruth=labels)
    with pytest.raises(BadInput, match="no labels on slices 0-1"):
        load_training_data(workspace, options(dataset, slices="0-1"))


def test_dense_modes_keep_empty_slices_with_a_note(workspace: Workspace) -> None:
    labels = stripes()
    labels[3] = 0
    dataset = make_dataset(workspace, z_image(), groundtruth=labels)
    data = load_training_data(workspace, options(dataset))
    assert data.slices == [0, 1, 2, 3, 4]
    assert not data.targets[3].any()
    assert data.notes == [
        "Slices with no labels at all (every value 0) are trained on as they are: 3. If nobody "
        "labelled them, leave them out with the slices option."
    ]


def test_out_of_range_classes_in_a_dataset(workspace: Workspace) -> None:
    labels = stripes() * 3
    dataset = make_dataset(workspace, z_image(), groundtruth=labels)
    with pytest.raises(BadInput, match="set the number of classes to 4"):
        load_training_data(workspace, options(dataset, target="classes"))
    data = load_training_data(workspace, options(dataset, target="classes", n_classes=4))
    assert set(np.unique(data.targets).tolist()) == {0, 3}
    assert data.notes == ["No labelled pixel is of class 1, 2: the model cannot learn it."]


def test_painted_mode_drops_unpainted_slices(workspace: Workspace) -> None:
    painted = np.zeros((5, 40, 30), np.uint32)
    painted[1, 5:10, 5:10] = 1
    painted[3, 20:25, 5:10] = 2
    dataset = make_dataset(workspace, z_image(), groundtruth=painted)
    data = load_training_data(workspace, options(dataset, target="painted"))
    assert data.slices == [1, 3]
    assert data.notes == ["Slices without labels were left out: 0, 2, 4."]
    assert (data.targets != IGNORE).sum() == 50
    assert data.targets[1, 22, 7] == 1 and data.targets[0, 7, 7] == 0


def test_segmentation_is_read_as_proofread(workspace: Workspace) -> None:
    """Merging two fragments in Dojo removes the membrane between them from the targets."""
    fragments = np.ones((3, 20, 20), np.uint32)
    fragments[:, :, 10:] = 2
    dataset = make_dataset(workspace, z_image((3, 20, 20)), segmentation=fragments)
    opts = TrainOptions(dataset=dataset.id, target="membrane")
    assert load_training_data(workspace, opts).targets[:, :, 9:11].all()
    editor = proofreader(workspace, dataset.id)
    try:
        editor.ensure_ready()
        editor.commit("ann", "merge", {}, tools.merge([1, 2]))
    finally:
        forget_proofreader(workspace, dataset.id)
    assert not load_training_data(workspace, opts).targets.any()


# --- split ----------------------------------------------------------------------------------


def test_split_is_deterministic_and_keeps_training_slices() -> None:
    slices = list(range(20, 40))
    first = split_by_slice(slices, 0.15, seed=3)
    assert first == split_by_slice(slices, 0.15, seed=3)
    train, validation = first
    assert len(validation) == 3 and sorted(train + validation) == list(range(20))
    assert {tuple(split_by_slice(slices, 0.15, s).validation) for s in range(10)} != {
        tuple(validation)
    }
    assert tuple(split_by_slice(slices, 0.0, 3)) == (list(range(20)), [])
    assert len(split_by_slice([5, 6], 0.5, 0).validation) == 1
    assert len(split_by_slice([5, 6, 7], 0.01, 0).validation) == 1  # at least one held out


def test_split_of_one_slice_says_there_is_no_validation() -> None:
    split = split_by_slice([7], 0.3, 0)
    assert (split.train, split.validation) == ([0], [])
    assert "nothing is held out for validation" in split.note


# --- patches --------------------------------------------------------------------------------


def dense_data(channels: int = 1, shape: tuple[int, int, int] = (6, 50, 60)) -> TrainingData:
    """In-memory data whose image encodes slice, row and column of each pixel."""
    depth = shape[0]
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    planes = ((z * 10000 + y * 100 + x) / 1e5).astype(np.float32)
    targets = ((y + x) % 3).astype(np.uint8)
    offsets = (0,) if channels == 1 else (-1, 0, 1)
    rows = np.array([[min(max(i + o, 0), depth - 1) for o in offsets] for i in range(depth)])
    return TrainingData(planes, targets, list(range(depth)), rows, 1.0, 3, depth)


def decode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    code = np.rint(x * 1e5).astype(int)
    return code // 10000, code // 100 % 100, code % 100


def test_sampler_patches_are_aligned_crops() -> None:
    data = dense_data()
    sampler = PatchSampler(data, [1, 4], 32, 5, 1, NO_AUGMENT, seed=0)
    x, y = sampler.batch()
    assert x.shape == (5, 32, 32, 1) and x.dtype == np.float32
    assert y.shape == (5, 32, 32) and y.dtype == np.uint8
    z, row, col = decode(x[..., 0])
    assert set(np.unique(z).tolist()) <= {1, 4}
    np.testing.assert_array_equal(y, (row + col) % 3)  # the target of the same pixels


def test_sampler_three_channels_at_volume_ends() -> None:
    data = dense_data(channels=3)
    sampler = PatchSampler(data, [0, 5], 16, 8, 3, NO_AUGMENT, seed=1)
    x, _ = sampler.batch()
    z = decode(x)[0]
    for patch in z:
        triple = tuple(int(patch[0, 0, c]) for c in range(3))
        assert triple in {(0, 0, 1), (4, 5, 5)}
        assert (patch == patch[:1, :1]).all()  # each channel is one slice


def test_sampler_is_reproducible_and_thread_safe() -> None:
    data = dense_data()
    options = AugmentOptions(elastic=0.5)

    def batches(parallel: bool) -> list[bytes]:
        sampler = PatchSampler(data, [0, 2, 3], 24, 4, 1, options, seed=5)
        if not parallel:
            return [sampler.batch()[0].tobytes() for _ in range(12)]
        with ThreadPoolExecutor(4) as pool:
            return [x.tobytes() for x, _ in pool.map(lambda _: sampler.batch(), range(12))]

    sequential = batches(parallel=False)
    assert sequential == batches(parallel=False)
    assert len(set(sequential)) == 12
    assert sorted(sequential) == sorted(batches(parallel=True))


def test_sampler_pads_slices_smaller_than_the_patch(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, z_image(), groundtruth=stripes())
    data = load_training_data(workspace, options(dataset))
    x, y = PatchSampler(data, [0, 1], 64, 2, 1, NO_AUGMENT, seed=0).batch()
    assert x.shape == (2, 64, 64, 1) and y.shape == (2, 64, 64)
    for target in y:
        np.testing.assert_array_equal(target[:40, :30], stripes()[0])
        np.testing.assert_array_equal(target[40:, :30], stripes()[0][-2:-26:-1])  # mirrored


def test_sampler_centres_patches_on_sparse_paint() -> None:
    data = dense_data(shape=(2, 300, 300))
    data.targets[:] = IGNORE
    data.targets[1, 250:255, 20:25] = 1
    sampler = PatchSampler(data, [0, 1], 32, 16, 1, NO_AUGMENT, seed=0)
    for _ in range(5):
        _, y = sampler.batch()
        assert (y != IGNORE).any(axis=(1, 2)).all()


def test_validation_tiles_are_fixed_and_cover_the_slices() -> None:
    data = dense_data()
    first = list(validation_batches(data, [2, 3], 32, 1, batch_size=3))
    again = list(validation_batches(data, [2, 3], 32, 1, batch_size=3))
    assert [b[0].shape[0] for b in first] == [3, 3, 2]  # 2 × 2 tiles per 50 × 60 slice
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    x = np.concatenate([b[0] for b in first])[..., 0]
    z, row, col = decode(x)
    for slice_z in (2, 3):
        seen = np.zeros((50, 60), bool)
        seen[row[z == slice_z], col[z == slice_z]] = True
        assert seen.all()
    y = np.concatenate([b[1] for b in first])
    np.testing.assert_array_equal(y, (row + col) % 3)  # not augmented


def test_validation_tiles_are_bounded() -> None:
    data = dense_data(shape=(4, 300, 300))
    batches = list(validation_batches(data, [0, 1, 2, 3], 32, 1, batch_size=8, max_patches=32))
    assert sum(len(x) for x, _ in batches) == 32


def test_describe_names_slices_by_z(workspace: Workspace) -> None:
    dataset = make_dataset(workspace, z_image((6, 40, 30)), groundtruth=stripes((6, 40, 30)))
    data = load_training_data(workspace, options(dataset, slices="1-5"))
    split = split_by_slice(data.slices, 0.2, 0)
    info = describe(data, split)
    assert info["slices"] == "1-5"
    held = [data.slices[i] for i in split.validation]
    assert info["validation"] == str(held[0]) and len(held) == 1


# --- real data ------------------------------------------------------------------------------


@pytest.fixture
def isbi(workspace: Workspace, tmp_path: Path, data: Path) -> Iterator[Dataset]:
    """ISBI 2012 train: the images that have labels (24 of 30) and their label PNGs."""
    labels = data / "isbi2012_drosophila_vnc" / "train" / "label"
    names = sorted(p.name for p in labels.glob("*.png"))
    images = tmp_path / "image"
    images.mkdir()
    for name in names:
        shutil.copy(ISBI_IMAGES / name, images / name)
    sources = {"image": open_source(images), "groundtruth": open_source(labels)}
    yield import_dataset(workspace, "ISBI 2012", sources, (50, 4, 4))


def test_isbi_membranes_are_class_one(workspace: Workspace, isbi: Dataset) -> None:
    started = time.perf_counter()
    opts = options(isbi, target="binary_inverted", channels=3, slices="")
    data = load_training_data(workspace, opts)
    assert data.targets.shape == (24, 512, 512) and data.planes.shape == (24, 512, 512)
    assert data.targets.mean() == pytest.approx(0.22, abs=0.01)  # 78 % of labels are 255
    image = data.images
    assert image[data.targets == 1].mean() < image[data.targets == 0].mean() - 0.1  # darker
    split = split_by_slice(data.slices, opts.validation_fraction, opts.seed)
    sampler = PatchSampler(data, split.train, 128, 8, 3, opts.augment, opts.seed)
    x, y = sampler.batch()
    assert x.shape == (8, 128, 128, 3) and set(np.unique(y).tolist()) <= {0, 1}
    tiles = list(validation_batches(data, split.validation, 128, 3))
    assert sum(len(t) for t, _ in tiles) == 32
    assert time.perf_counter() - started < 10
