"""Pieces the built-in models share: padding to a size multiple, convolution blocks, logits.

Functions take and return Keras tensors of shape (batch, height, width, channels); each
imports Keras when called, so importing this module stays light.
"""

from __future__ import annotations

from typing import Any

Cropping = tuple[tuple[int, int], tuple[int, int]]
Shape = tuple[int | None, int | None, int]

INITIALIZER = "he_normal"  # suits the ReLU that follows every convolution


def pad_amounts(size: int | None, multiple: int) -> tuple[int, int]:
    """Rows (or columns) to add before and after `size` to reach a multiple (none if unknown)."""
    if size is None:
        return 0, 0
    extra = -size % multiple
    return extra // 2, extra - extra // 2


def model_input(input_shape: Shape, multiple: int) -> tuple[Any, Any, Cropping]:
    """The model's input, that input zero-padded to a multiple of `multiple` (when height and
    width are known), and the cropping that undoes the padding."""
    import keras

    inputs = keras.Input(shape=input_shape, name="image")
    cropping = (pad_amounts(input_shape[0], multiple), pad_amounts(input_shape[1], multiple))
    if not any(cropping[0] + cropping[1]):
        return inputs, inputs, cropping
    return inputs, keras.layers.ZeroPadding2D(cropping, name="pad_to_multiple")(inputs), cropping


def logits(x: Any, n_classes: int, cropping: Cropping) -> Any:
    """Per-pixel class scores (no activation: the loss chooses softmax or sigmoid), cropped
    back to the input's height and width."""
    import keras

    x = keras.layers.Conv2D(n_classes, 1, dtype="float32", name="logits")(x)
    if any(cropping[0] + cropping[1]):
        x = keras.layers.Cropping2D(cropping, name="crop_to_input")(x)
    return x


def conv(
    x: Any,
    filters: int,
    batch_norm: bool,
    *,
    kernel_size: int = 3,
    dilation: int = 1,
    activation: str | None = "relu",
) -> Any:
    """Convolution ('same' padding), then batch normalisation if asked, then the activation."""
    import keras

    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        dilation_rate=dilation,
        use_bias=not batch_norm,  # batch normalisation brings its own shift
        kernel_initializer=INITIALIZER,
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation(activation)(x) if activation else x


def norm_relu(x: Any, batch_norm: bool) -> Any:
    """Batch normalisation (if asked) then ReLU: the pre-activation of ResNet v2 and DenseNet."""
    import keras

    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation("relu")(x)


def dropout(x: Any, rate: float) -> Any:
    """Drop whole feature maps while training: neighbouring pixels are too alike for
    per-pixel dropout to regularise a convolution."""
    import keras

    return keras.layers.SpatialDropout2D(rate)(x) if rate > 0 else x


def dilation_rates(count: int, levels: int) -> list[int]:
    """1, 2, 4, … 2^(levels−1), repeated to `count` rates."""
    return [2 ** (i % levels) for i in range(count)]
