"""The 2D trainer's losses against values worked out by hand, the ignore label, a compiled
training step with each loss, and the numpy probabilities and scores."""

from __future__ import annotations

import math
from typing import Any, get_args

import numpy as np
import pytest

from unem.errors import BadInput
from unem.train2d.losses import (
    DICE_SMOOTH,
    IGNORE,
    LOSSES,
    class_weights_from_frequency,
    make_loss,
    pixel_scores,
    probabilities,
)
from unem.train2d.options import LossName

# One image of 1 × 2 pixels, two classes: pixel 0 is class 0, pixel 1 is class 1.
LOGITS = np.array([[[[2.0, 0.0], [0.5, 1.5]]]], np.float32)  # (1, 1, 2, 2)
TARGETS = np.array([[[0, 1]]], np.uint8)  # (1, 1, 2)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def value(name: str, targets: np.ndarray, logits: np.ndarray, weights: Any = None) -> float:
    loss = make_loss(name, 2, weights)  # type: ignore[arg-type]
    return float(np.asarray(loss(targets, logits)))


# Each reference is written out from the definition, pixel by pixel.
# softmax of pixel 0: e²/(e²+1) for class 0; of pixel 1: e^1.5/(e^0.5+e^1.5) for class 1.
CE_0 = -math.log(math.exp(2) / (math.exp(2) + 1))  # = log(1 + e^-2)
CE_1 = -math.log(math.exp(1.5) / (math.exp(0.5) + math.exp(1.5)))  # = log(1 + e^-1)
REFERENCE = {
    "softmax_cross_entropy": (CE_0 + CE_1) / 2,
    "weighted_cross_entropy": (0.25 * CE_0 + 3.0 * CE_1) / 2,  # weights (0.25, 3)
    # per class: -t·log σ(x) - (1 - t)·log(1 - σ(x)); mean over 2 pixels × 2 classes
    "logistic": (
        -math.log(sigmoid(2.0))
        - math.log(1 - sigmoid(0.0))
        - math.log(1 - sigmoid(0.5))
        - math.log(sigmoid(1.5))
    )
    / 4,
    "least_squares": (
        (sigmoid(2.0) - 1) ** 2 + sigmoid(0.0) ** 2 + sigmoid(0.5) ** 2 + (sigmoid(1.5) - 1) ** 2
    )
    / 4,
    "l1": (abs(sigmoid(2.0) - 1) + sigmoid(0.0) + sigmoid(0.5) + abs(sigmoid(1.5) - 1)) / 4,
    # t = (+1, -1) then (-1, +1): max(0, 1-2), max(0, 1+0), max(0, 1+0.5), max(0, 1-1.5)
    "hinge": (0.0 + 1.0 + 1.5 + 0.0) / 4,
}


def dice_reference() -> float:
    p00 = math.exp(2) / (math.exp(2) + 1)  # pixel 0, class 0
    p10 = math.exp(0.5) / (math.exp(0.5) + math.exp(1.5))  # pixel 1, class 0
    p01, p11 = 1 - p00, 1 - p10
    s = DICE_SMOOTH
    dice0 = (2 * p00 + s) / (p00 + p10 + 1 + s)  # class 0: one true pixel (pixel 0)
    dice1 = (2 * p11 + s) / (p01 + p11 + 1 + s)  # class 1: one true pixel (pixel 1)
    return 1 - (dice0 + dice1) / 2


def test_every_loss_name_is_declared_once() -> None:
    assert set(LOSSES) == set(get_args(LossName))
    for name, spec in LOSSES.items():
        assert spec.name == name and spec.title
        assert spec.activation in ("softmax", "sigmoid")


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_loss_matches_hand_computed_value(name: str) -> None:
    weights = [0.25, 3.0] if name == "weighted_cross_entropy" else None
    assert value(name, TARGETS, LOGITS, weights) == pytest.approx(REFERENCE[name], rel=1e-5)


def test_dice_matches_hand_computed_value() -> None:
    assert value("dice", TARGETS, LOGITS) == pytest.approx(dice_reference(), rel=1e-5)


def test_weighted_cross_entropy_without_weights_is_cross_entropy() -> None:
    assert value("weighted_cross_entropy", TARGETS, LOGITS) == pytest.approx(
        REFERENCE["softmax_cross_entropy"], rel=1e-6
    )


def test_wrong_number_of_class_weights_is_refused() -> None:
    with pytest.raises(BadInput, match="one class weight per class"):
        make_loss("weighted_cross_entropy", 3, [1.0, 2.0])


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ignored_pixels_do_not_count(name: str) -> None:
    targets = np.array([[[0, IGNORE]]], np.uint8)
    other = LOGITS.copy()
    other[0, 0, 1] = [-7.0, 9.0]  # only the ignored pixel changes
    alone = value(name, TARGETS[:, :, :1], LOGITS[:, :, :1])  # the valid pixel by itself
    assert value(name, targets, LOGITS) == pytest.approx(alone, rel=1e-5)
    assert value(name, targets, other) == pytest.approx(alone, rel=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_all_ignored_gives_a_finite_loss(name: str) -> None:
    targets = np.full((1, 1, 2), IGNORE, np.uint8)
    assert np.isfinite(value(name, targets, LOGITS))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_trains_in_a_compiled_model(name: str) -> None:
    """One compiled training step; then the compiled evaluation equals the loss of the
    predicted logits computed eagerly, so the ignore mask works inside tf.function."""
    import keras

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.random((2, 8, 8, 1), dtype=np.float32)
    y = (x[..., 0] > 0.5).astype(np.uint8)
    y[:, :3] = IGNORE
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, padding="same")])
    loss = make_loss(name, 2, [1.0, 2.0] if name == "weighted_cross_entropy" else None)  # type: ignore[arg-type]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, jit_compile=False)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    evaluated = model.evaluate(x, y, batch_size=2, verbose=0)
    eager = float(np.asarray(loss(y, model.predict(x, verbose=0))))
    assert evaluated == pytest.approx(eager, rel=1e-4)
    assert float(model.train_on_batch(x, y)) == pytest.approx(eager, rel=1e-4)


def test_class_weights_balance_frequencies() -> None:
    targets = np.array([[0, 0, 0, 1, IGNORE, IGNORE]], np.uint8)
    # frequencies 3/4 and 1/4 → inverse 4/3 and 4 → mean 8/3 → 0.5 and 1.5
    assert class_weights_from_frequency(targets, 2) == pytest.approx([0.5, 1.5])
    # an absent class gets the largest present weight: 4/3, 4, 4 → mean 28/9
    assert class_weights_from_frequency(targets, 3) == pytest.approx([3 / 7, 9 / 7, 9 / 7])


def test_probabilities_are_stable_and_normalised() -> None:
    logits = np.array([[1000.0, -1000.0, 0.0], [1.0, 2.0, 3.0]], np.float32)
    soft = probabilities(logits, "softmax")
    assert np.all(np.isfinite(soft)) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(soft[0], [1.0, 0.0, 0.0])
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(soft[1], e / e.sum(), rtol=1e-6)
    sig = probabilities(logits, "sigmoid")
    assert np.all(np.isfinite(sig))
    np.testing.assert_allclose(sig[0], [1.0, 0.0, 0.5])
    np.testing.assert_allclose(sig[1], 1 / (1 + np.exp(-np.array([1.0, 2.0, 3.0]))), rtol=1e-6)


def test_pixel_scores_by_hand() -> None:
    targets = np.array([[1, 1, 0, 0, IGNORE]], np.uint8)
    classes = np.array([[1, 0, 1, 0, 1]])  # TP 1, FN 1, FP 1, TN 1; the last is ignored
    scores = pixel_scores(classes, targets, 2)
    assert scores["accuracy"] == pytest.approx(0.5)
    assert scores["iou"] == pytest.approx(1 / 3)  # TP / (TP + FP + FN)
    assert scores["dice"] == pytest.approx(0.5)  # 2 TP / (2 TP + FP + FN)
    assert scores["mean_iou"] == pytest.approx(1 / 3)  # class 0: 1 / 3 as well
    assert scores["pixels"] == 4
    probs = np.stack([1 - classes, classes], axis=-1).astype(np.float32) * 0.8 + 0.1
    assert pixel_scores(probs, targets, 2) == scores


def test_pixel_scores_without_foreground_are_perfect() -> None:
    targets = np.zeros((2, 3), np.uint8)
    scores = pixel_scores(np.zeros((2, 3), int), targets, 2)
    assert scores["accuracy"] == scores["iou"] == scores["dice"] == 1.0
