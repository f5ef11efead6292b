"""U-Net (Ronneberger et al. 2015): an encoder that halves the image `depth` times and a
decoder that doubles it back, joined by skip connections at each level. The usual first
choice for EM membranes and mitochondria."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from unem.models import blocks
from unem.models.spec import ModelSpec

MAX_FILTERS = 512


class UNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="U-Net")

    depth: int = Field(
        4,
        ge=1,
        le=6,
        description="Times the encoder halves the image: deeper sees more context. "
        "Inputs are padded to a multiple of 2^depth.",
    )
    base_filters: int = Field(
        16,
        ge=2,
        le=128,
        description=f"Feature maps at full resolution, doubled at each level down "
        f"(at most {MAX_FILTERS}).",
    )
    batch_norm: bool = Field(
        True, description="Normalise each convolution over the batch: steadier, faster training."
    )
    dropout: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Share of feature maps dropped at the bottom of the U while training "
        "(0: none).",
    )
    upsampling: Literal["transpose", "bilinear"] = Field(
        "transpose",
        description="How the decoder doubles the image: a learnt transposed convolution, or "
        "bilinear interpolation then a convolution (no checkerboard artefacts).",
    )


class UNet(ModelSpec):
    name = "unet"
    title = "U-Net"
    description = (
        "Encoder-decoder with skip connections; sees a wide context at little cost. "
        "The default for membranes and mitochondria."
    )
    Options = UNetOptions

    def size_multiple(self, options: Any) -> int:
        return int(2**options.depth)

    def build(
        self, options: Any, input_shape: tuple[int | None, int | None, int], n_classes: int
    ) -> Any:
        import keras

        o: UNetOptions = options
        inputs, x, cropping = blocks.model_input(input_shape, self.size_multiple(o))
        skips = []
        for level in range(o.depth):
            x = double_conv(x, filters(o, level), o.batch_norm)
            skips.append(x)
            x = keras.layers.MaxPooling2D(2)(x)
        x = blocks.dropout(double_conv(x, filters(o, o.depth), o.batch_norm), o.dropout)
        for level in reversed(range(o.depth)):
            x = upsample(x, filters(o, level), o)
            x = keras.layers.Concatenate()([skips[level], x])
            x = double_conv(x, filters(o, level), o.batch_norm)
        return keras.Model(inputs, blocks.logits(x, n_classes, cropping), name=self.name)


def filters(options: UNetOptions, level: int) -> int:
    return min(options.base_filters << level, MAX_FILTERS)


def double_conv(x: Any, n_filters: int, batch_norm: bool) -> Any:
    return blocks.conv(blocks.conv(x, n_filters, batch_norm), n_filters, batch_norm)


def upsample(x: Any, n_filters: int, options: UNetOptions) -> Any:
    import keras

    if options.upsampling == "transpose":
        return keras.layers.Conv2DTranspose(
            n_filters, 2, strides=2, kernel_initializer=blocks.INITIALIZER
        )(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    return blocks.conv(x, n_filters, options.batch_norm)
