"""A residual network kept at full resolution (no pooling, so no padding either): blocks of
two 3×3 convolutions added to their input (pre-activation, He et al. 2016), with dilations
growing block after block to see a wide context, as in dilated residual networks
(Yu et al. 2017)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from unem.models import blocks
from unem.models.spec import ModelSpec


class ResNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="ResNet")

    blocks: int = Field(
        8, ge=1, le=32, description="Residual blocks: two 3×3 convolutions added to their input."
    )
    filters: int = Field(32, ge=2, le=256, description="Feature maps of every convolution.")
    dilation_levels: int = Field(
        4,
        ge=1,
        le=6,
        description="Successive blocks dilate their convolutions 1, 2, 4, … 2^(levels−1) "
        "times, then start again: a wider view without losing resolution (1: no dilation).",
    )
    batch_norm: bool = Field(
        True, description="Normalise before each convolution over the batch: steadier training."
    )
    dropout: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Share of feature maps dropped inside each block while training (0: none).",
    )


class ResNet(ModelSpec):
    name = "resnet"
    title = "ResNet (dilated)"
    description = (
        "Residual blocks at full resolution with growing dilations: sharp boundaries, "
        "any input size without padding."
    )
    Options = ResNetOptions

    def build(
        self, options: Any, input_shape: tuple[int | None, int | None, int], n_classes: int
    ) -> Any:
        import keras

        o: ResNetOptions = options
        inputs, x, cropping = blocks.model_input(input_shape, self.size_multiple(o))
        x = blocks.conv(x, o.filters, batch_norm=False, activation=None)
        for rate in blocks.dilation_rates(o.blocks, o.dilation_levels):
            x = residual_block(x, o, rate)
        x = blocks.norm_relu(x, o.batch_norm)
        return keras.Model(inputs, blocks.logits(x, n_classes, cropping), name=self.name)


def residual_block(x: Any, options: ResNetOptions, dilation: int) -> Any:
    import keras

    y = blocks.norm_relu(x, options.batch_norm)
    y = blocks.conv(y, options.filters, False, dilation=dilation, activation=None)
    y = blocks.dropout(blocks.norm_relu(y, options.batch_norm), options.dropout)
    y = blocks.conv(y, options.filters, False, dilation=dilation, activation=None)
    return keras.layers.Add()([x, y])
