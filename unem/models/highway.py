"""A convolutional highway network (Srivastava et al. 2015) at full resolution: each unit
mixes a transformed copy of its input with the input itself, pixel by pixel, through a
learnt gate: y = T·H(x) + (1 − T)·x."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from unem.models import blocks
from unem.models.spec import ModelSpec


class HighwayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Highway network")

    units: int = Field(10, ge=1, le=32, description="Highway units: a gated convolution each.")
    filters: int = Field(32, ge=2, le=256, description="Feature maps of every convolution.")
    kernel_size: Literal[3, 5] = Field(3, description="Side of the convolution kernels.")
    dilation_levels: int = Field(
        3,
        ge=1,
        le=6,
        description="Successive units dilate their convolutions 1, 2, 4, … 2^(levels−1) "
        "times, then start again: a wider view without losing resolution (1: no dilation).",
    )
    gate_bias: float = Field(
        -2.0,
        ge=-6,
        le=2,
        description="Initial bias of the gates: negative starts every unit close to passing "
        "its input through, which lets deep highway networks train.",
    )
    batch_norm: bool = Field(
        True, description="Normalise each transform over the batch: steadier training."
    )
    dropout: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Share of transformed feature maps dropped while training (0: none).",
    )


class Highway(ModelSpec):
    name = "highway"
    title = "Highway network"
    description = (
        "Gated convolutions at full resolution: each unit learns how much to change its "
        "input. Any input size without padding."
    )
    Options = HighwayOptions

    def build(
        self, options: Any, input_shape: tuple[int | None, int | None, int], n_classes: int
    ) -> Any:
        import keras

        o: HighwayOptions = options
        inputs, x, cropping = blocks.model_input(input_shape, self.size_multiple(o))
        x = blocks.conv(x, o.filters, o.batch_norm, kernel_size=o.kernel_size)
        for rate in blocks.dilation_rates(o.units, o.dilation_levels):
            x = highway_unit(x, o, rate)
        return keras.Model(inputs, blocks.logits(x, n_classes, cropping), name=self.name)


def highway_unit(x: Any, options: HighwayOptions, dilation: int) -> Any:
    """x + T·(H − x), which is T·H + (1 − T)·x written with stock layers only."""
    import keras

    size = options.kernel_size
    h = blocks.conv(x, options.filters, options.batch_norm, kernel_size=size, dilation=dilation)
    h = blocks.dropout(h, options.dropout)
    gate = keras.layers.Conv2D(
        options.filters,
        size,
        padding="same",
        dilation_rate=dilation,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(options.gate_bias),
    )(x)
    change = keras.layers.Multiply()([gate, keras.layers.Subtract()([h, x])])
    return keras.layers.Add()([x, change])
