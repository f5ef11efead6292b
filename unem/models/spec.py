"""The model plugin API: what a 2D CNN is to UNEM.

A model is a `ModelSpec` subclass with a name, a title, a pydantic `Options` schema (each
field with a default, bounds and a description: the trainer's form is generated from it and
the trainer validates with it) and `build(options, input_shape, n_classes)` returning a
`keras.Model`. Built-in models register through the same door as plugins
(`register_models(register)`; see `unem.plugins`).

A spec module must stay light: the server imports it to read the schema, so Keras is
imported inside `build` (and the hooks), which only ever run in worker processes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from unem.forms import form_schema

# A keras.Model. Not imported even under TYPE_CHECKING: import-linter counts that import, and
# the server (unem.web, unem.cli) reaches this module through unem.plugins. Keras is untyped
# for mypy anyway.
KerasModel = Any


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec:
    """A 2D CNN the trainer can build.

    `build` returns a fully convolutional model from images of shape `input_shape`
    (height, width, channels; height and width may be None) to logits of shape
    (height, width, n_classes): no final activation, because the loss chooses it (softmax
    or sigmoid). With concrete height and width the model accepts them whatever they are
    (padding inside if the architecture needs it); with None it accepts any size that is a
    multiple of `size_multiple(options)`, and callers pad to that multiple.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def build(
        self, options: Any, input_shape: tuple[int | None, int | None, int], n_classes: int
    ) -> KerasModel:
        raise NotImplementedError

    def size_multiple(self, options: Any) -> int:
        """Height and width of a size-free model's input must be multiples of this."""
        return 1

    def preprocess(self, images: np.ndarray, options: Any) -> np.ndarray:
        """Images (batch, height, width, channels) float32 in [0, 1] → the model's input."""
        return images

    def postprocess(self, probabilities: np.ndarray, options: Any) -> np.ndarray:
        """Probabilities (batch, height, width, n_classes) → what the prediction layer holds."""
        return probabilities

    def validate(self, options: dict[str, Any]) -> BaseModel:
        """The options as the schema reads them (pydantic.ValidationError if they are bad)."""
        return self.Options.model_validate(options)

    def to_json(self) -> dict[str, Any]:
        schema = form_schema(self.Options)
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "schema": schema,
            "fields": list(schema.get("properties", {})),  # in order: JSON objects lose it
        }
