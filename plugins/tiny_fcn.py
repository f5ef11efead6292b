"""Tiny FCN: a worked example of a UNEM model plugin, in one file.

A stack of 3×3 convolutions at full resolution, dilated 1, 2, 4, … so that a few layers see
a useful context. Copy this file next to it (or into <workspace>/plugins/), rename the class
and `name`, change `build`: the trainer page lists it after a restart. See PLUGINS.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from unem.models.spec import ModelSpec


class TinyFCNOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Tiny FCN")  # a typo is an error

    layers: int = Field(4, ge=1, le=10, description="3×3 convolutions, dilated 1, 2, 4, …")
    filters: int = Field(16, ge=2, le=128, description="Feature maps of every convolution.")


class TinyFCN(ModelSpec):
    name = "tiny-fcn"
    title = "Tiny FCN (example plugin)"
    description = "A few dilated convolutions: quick to train, a template for your own model."
    Options = TinyFCNOptions

    def build(
        self, options: Any, input_shape: tuple[int | None, int | None, int], n_classes: int
    ) -> Any:
        import keras  # here, not at the top: the server imports this file to read the schema

        inputs = keras.Input(shape=input_shape)
        x = inputs
        for layer in range(options.layers):
            dilation = 2 ** min(layer, 4)
            x = keras.layers.Conv2D(
                options.filters, 3, padding="same", dilation_rate=dilation, activation="relu"
            )(x)
        logits = keras.layers.Conv2D(n_classes, 1)(x)  # no activation: the loss picks one
        return keras.Model(inputs, logits, name=self.name)


def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(TinyFCN())
