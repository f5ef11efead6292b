"""A fully convolutional DenseNet ("One Hundred Layers Tiramisu", Jégou et al. 2017): dense
blocks, in which each layer sees the feature maps of all the layers before it, on a U-shaped
path down and up with skip connections. Few parameters for its depth."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from unem.models import blocks
from unem.models.spec import ModelSpec


class DenseNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="DenseNet")

    dense_blocks: int = Field(
        3,
        ge=1,
        le=5,
        description="Dense blocks on the way down, each followed by a halving of the image "
        "(mirrored on the way up). Inputs are padded to a multiple of 2^dense_blocks.",
    )
    layers_per_block: int = Field(
        4, ge=1, le=12, description="3×3 convolution layers in each dense block."
    )
    growth_rate: int = Field(
        12, ge=2, le=64, description="Feature maps each layer adds to its block."
    )
    initial_filters: int = Field(
        32, ge=2, le=128, description="Feature maps of the first convolution."
    )
    batch_norm: bool = Field(
        True, description="Normalise before each convolution over the batch: steadier training."
    )
    dropout: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Share of feature maps dropped after each layer while training (0: none).",
    )


class DenseNet(ModelSpec):
    name = "densenet"
    title = "DenseNet (Tiramisu)"
    description = (
        "Dense blocks on a U-shaped path: every layer reuses all earlier feature maps, "
        "so it stays small for its depth."
    )
    Options = DenseNetOptions

    def size_multiple(self, options: Any) -> int:
        return int(2**options.dense_blocks)

    def build(
        self, options: Any, input_shape: tuple[int | None, int | None, int], n_classes: int
    ) -> Any:
        import keras

        o: DenseNetOptions = options
        inputs, x, cropping = blocks.model_input(input_shape, self.size_multiple(o))
        x = blocks.conv(x, o.initial_filters, batch_norm=False, activation=None)
        skips = []
        for _ in range(o.dense_blocks):
            x, _new = dense_block(x, o)
            skips.append(x)
            x = transition_down(x, o)
        _, x = dense_block(x, o)  # the bottleneck passes on only what it adds
        for level in reversed(range(o.dense_blocks)):
            x = keras.layers.Conv2DTranspose(
                o.layers_per_block * o.growth_rate, 3, strides=2, padding="same"
            )(x)
            x = keras.layers.Concatenate()([skips[level], x])
            everything, x = dense_block(x, o)
        x = blocks.norm_relu(everything, o.batch_norm)
        return keras.Model(inputs, blocks.logits(x, n_classes, cropping), name=self.name)


def dense_block(x: Any, options: DenseNetOptions) -> tuple[Any, Any]:
    """(input and new feature maps, new feature maps only)."""
    import keras

    new = []
    for _ in range(options.layers_per_block):
        y = blocks.norm_relu(x, options.batch_norm)
        y = blocks.conv(y, options.growth_rate, False, activation=None)
        new.append(blocks.dropout(y, options.dropout))
        x = keras.layers.Concatenate()([x, new[-1]])
    return x, new[0] if len(new) == 1 else keras.layers.Concatenate()(new)


def transition_down(x: Any, options: DenseNetOptions) -> Any:
    import keras

    y = blocks.norm_relu(x, options.batch_norm)
    y = blocks.conv(y, x.shape[-1], False, kernel_size=1, activation=None)
    return keras.layers.MaxPooling2D(2)(blocks.dropout(y, options.dropout))
