"""The loss functions of the 2D trainer and the numpy scores of its validation curves.

Targets are class maps (batch, height, width) of integers; pixels equal to `IGNORE` are
left out of every loss and score. The model outputs logits (batch, height, width, K);
each loss applies its own activation, which `probabilities` repeats at inference.

Losses are written with `keras.ops` only, so they run on any Keras backend and inside a
compiled training step; Keras is imported inside the functions (this module is imported
by the server, which never loads Keras). Every loss is a mean over the pixels it counts:
the sum over valid pixels divided by max(number of valid pixels, 1), so a batch with no
valid pixel has loss 0 and no gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from unem.errors import BadInput
from unem.train2d.options import IGNORE, LossName

DICE_SMOOTH = 1.0  # added to the Dice numerator and denominator: an absent class scores 1

Activation = Literal["softmax", "sigmoid"]
KerasLoss = Callable[[Any, Any], Any]  # (y_true, y_pred) -> scalar tensor


@dataclass(frozen=True)
class LossSpec:
    """A loss the trainer offers: `make(n_classes, class_weights)` builds the Keras loss."""

    name: str
    title: str
    activation: Activation
    make: Callable[[int, Sequence[float] | None], KerasLoss]


def _prepare(y_true: Any, y_pred: Any, n_classes: int) -> tuple[Any, Any, Any]:
    """Logits as float32, the one-hot targets and the valid-pixel mask (both float32)."""
    from keras import ops

    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(y_pred.shape):  # (b, h, w, 1) as some callers pass them
        labels = ops.squeeze(labels, axis=-1)
    valid = ops.not_equal(labels, IGNORE)
    one_hot = ops.one_hot(ops.where(valid, labels, 0), n_classes, dtype="float32")
    return ops.cast(y_pred, "float32"), one_hot, ops.cast(valid, "float32")


def _masked_mean(per_pixel: Any, valid: Any) -> Any:
    """Sum of `per_pixel` (b, h, w) over valid pixels / max(count of valid pixels, 1)."""
    from keras import ops

    return ops.sum(per_pixel * valid) / ops.maximum(ops.sum(valid), 1.0)


def _named(name: str, loss: KerasLoss) -> KerasLoss:
    loss.__name__ = name  # Keras shows it in logs and saved configs
    return loss


def _check_weights(class_weights: Sequence[float] | None, n_classes: int) -> np.ndarray:
    if not class_weights:
        return np.ones(n_classes, np.float32)
    if len(class_weights) != n_classes:
        raise BadInput(
            f"Give one class weight per class: {len(class_weights)} weights for "
            f"{n_classes} classes."
        )
    weights = np.asarray(class_weights, np.float32)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
        raise BadInput("Class weights must be non-negative numbers, at least one above 0.")
    return weights


def make_softmax_cross_entropy(n_classes: int, class_weights: Sequence[float] | None) -> KerasLoss:
    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        logits, one_hot, valid = _prepare(y_true, y_pred, n_classes)
        per_pixel = -ops.sum(one_hot * ops.log_softmax(logits, axis=-1), axis=-1)
        return _masked_mean(per_pixel, valid)

    return _named("softmax_cross_entropy", loss)


def make_weighted_cross_entropy(n_classes: int, class_weights: Sequence[float] | None) -> KerasLoss:
    """Cross-entropy with each pixel weighted by its class's weight (no weights: all 1).

    Divided by the count of valid pixels, not the sum of their weights, so weights that
    average 1 (see `class_weights_from_frequency`) keep the loss on the usual scale.
    """
    weights = _check_weights(class_weights, n_classes).tolist()

    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        logits, one_hot, valid = _prepare(y_true, y_pred, n_classes)
        pixel_weight = ops.sum(one_hot * ops.convert_to_tensor(weights, "float32"), axis=-1)
        per_pixel = -ops.sum(one_hot * ops.log_softmax(logits, axis=-1), axis=-1)
        return _masked_mean(pixel_weight * per_pixel, valid)

    return _named("weighted_cross_entropy", loss)


def make_logistic(n_classes: int, class_weights: Sequence[float] | None) -> KerasLoss:
    """Sigmoid cross-entropy of each class against the one-hot target, mean over classes."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        logits, one_hot, valid = _prepare(y_true, y_pred, n_classes)
        # max(x, 0) - x·t + log(1 + e^-|x|): the stable form of -t·log σ(x) - (1-t)·log(1-σ(x))
        per_class = ops.relu(logits) - logits * one_hot + ops.log1p(ops.exp(-ops.absolute(logits)))
        return _masked_mean(ops.mean(per_class, axis=-1), valid)

    return _named("logistic", loss)


def make_least_squares(n_classes: int, class_weights: Sequence[float] | None) -> KerasLoss:
    """Squared difference of sigmoid(logits) and the one-hot target, mean over classes."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        logits, one_hot, valid = _prepare(y_true, y_pred, n_classes)
        per_class = ops.square(ops.sigmoid(logits) - one_hot)
        return _masked_mean(ops.mean(per_class, axis=-1), valid)

    return _named("least_squares", loss)


def make_l1(n_classes: int, class_weights: Sequence[float] | None) -> KerasLoss:
    """Absolute difference of sigmoid(logits) and the one-hot target, mean over classes."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        logits, one_hot, valid = _prepare(y_true, y_pred, n_classes)
        per_class = ops.absolute(ops.sigmoid(logits) - one_hot)
        return _masked_mean(ops.mean(per_class, axis=-1), valid)

    return _named("l1", loss)


def make_hinge(n_classes: int, class_weights: Sequence[float] | None) -> KerasLoss:
    """max(0, 1 − t·logit) with t = +1 for the pixel's class and −1 for the others."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        logits, one_hot, valid = _prepare(y_true, y_pred, n_classes)
        per_class = ops.relu(1.0 - (2.0 * one_hot - 1.0) * logits)
        return _masked_mean(ops.mean(per_class, axis=-1), valid)

    return _named("hinge", loss)


def make_dice(n_classes: int, class_weights: Sequence[float] | None) -> KerasLoss:
    """1 − soft Dice of the softmax probabilities, mean over classes.

    Per class c over all valid pixels of the batch: (2·Σ p·t + s) / (Σ p + Σ t + s), with
    s = DICE_SMOOTH.
    """

    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        logits, one_hot, valid = _prepare(y_true, y_pred, n_classes)
        probs = ops.softmax(logits, axis=-1) * valid[..., None]
        one_hot = one_hot * valid[..., None]
        axes = (0, 1, 2)
        overlap = ops.sum(probs * one_hot, axis=axes)
        total = ops.sum(probs, axis=axes) + ops.sum(one_hot, axis=axes)
        dice = (2.0 * overlap + DICE_SMOOTH) / (total + DICE_SMOOTH)
        return 1.0 - ops.mean(dice)

    return _named("dice", loss)


LOSSES: dict[str, LossSpec] = {
    spec.name: spec
    for spec in (
        LossSpec(
            "softmax_cross_entropy", "Softmax cross-entropy", "softmax", make_softmax_cross_entropy
        ),
        LossSpec(
            "weighted_cross_entropy",
            "Class-weighted cross-entropy",
            "softmax",
            make_weighted_cross_entropy,
        ),
        LossSpec("logistic", "Logistic (sigmoid cross-entropy)", "sigmoid", make_logistic),
        LossSpec("least_squares", "Least squares", "sigmoid", make_least_squares),
        LossSpec("dice", "Dice", "softmax", make_dice),
        LossSpec("hinge", "Hinge", "sigmoid", make_hinge),
        LossSpec("l1", "L1 (absolute error)", "sigmoid", make_l1),
    )
}


def make_loss(
    name: LossName, n_classes: int, class_weights: Sequence[float] | None = None
) -> KerasLoss:
    """The Keras loss `name` for `n_classes` classes."""
    if name not in LOSSES:
        raise BadInput(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
    return LOSSES[name].make(n_classes, class_weights)


def class_weights_from_frequency(targets: np.ndarray, n_classes: int) -> list[float]:
    """Inverse class frequencies among the valid pixels of `targets`, normalised to mean 1.

    Classes absent from `targets` get the largest weight of the present ones (they cannot
    be balanced, and 1/0 would swamp the loss when they do appear).
    """
    values = targets[targets != IGNORE]
    counts = np.bincount(values.ravel(), minlength=n_classes)[:n_classes].astype(np.float64)
    present = counts > 0
    if not present.any():
        return [1.0] * n_classes
    weights = np.zeros(n_classes)
    weights[present] = counts[present].sum() / counts[present]
    weights[~present] = weights[present].max()
    return [float(w) for w in weights / weights.mean()]


def probabilities(logits: np.ndarray, activation: str) -> np.ndarray:
    """Class probabilities (..., K) float32 from logits (..., K), without overflow."""
    x = np.asarray(logits, np.float32)
    if activation == "softmax":
        shifted = np.exp(x - x.max(axis=-1, keepdims=True))
        result: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
        return result.astype(np.float32)
    if activation == "sigmoid":
        positive = np.exp(-np.abs(x))  # e^-|x| ≤ 1 never overflows
        return np.where(x >= 0, 1.0 / (1.0 + positive), positive / (1.0 + positive)).astype(
            np.float32
        )
    raise ValueError(f"unknown activation {activation!r}")


def pixel_scores(
    probabilities_or_classes: np.ndarray, targets: np.ndarray, n_classes: int
) -> dict[str, float]:
    """Accuracy, foreground (class 1) IoU and Dice, and mean IoU over classes.

    Parameters
    ----------
    probabilities_or_classes
        Probabilities (..., K) (each pixel's class is the most probable one) or classes
        (...) of the same shape as `targets`.
    targets
        Classes (...), IGNORE where a pixel is not scored.
    n_classes
        K.

    Returns
    -------
    dict with "accuracy", "iou" and "dice" of class 1, "mean_iou" over the classes present in
    the prediction or the targets, and "pixels" scored. A score whose pixels are all absent
    (e.g. no class 1 anywhere, predicted or true) is 1.0: nothing was missed.
    """
    predicted = np.asarray(probabilities_or_classes)
    if predicted.ndim == targets.ndim + 1:
        predicted = predicted.argmax(axis=-1)
    if predicted.shape != targets.shape:
        raise ValueError(f"prediction {predicted.shape} and targets {targets.shape} differ")
    valid = targets != IGNORE
    guess, truth = predicted[valid].astype(np.int64), targets[valid].astype(np.int64)
    confusion = np.bincount(truth * n_classes + guess, minlength=n_classes**2)
    confusion = confusion[: n_classes**2].reshape(n_classes, n_classes)  # [true, predicted]
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    ious = np.where(union > 0, hits / np.maximum(union, 1), 1.0)
    both = hits[1] + union[1]  # 2·TP + FP + FN
    return {
        "accuracy": float(hits.sum() / truth.size) if truth.size else 1.0,
        "iou": float(ious[1]),
        "dice": float(2 * hits[1] / both) if both else 1.0,
        "mean_iou": float(ious[union > 0].mean()) if (union > 0).any() else 1.0,
        "pixels": float(truth.size),
    }
