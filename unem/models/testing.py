"""Checks of the ModelSpec contract with real Keras, for the tests of built-in and plugin models.

    from unem.models.testing import check_model
    def test_my_model(tmp_path): check_model(MyModel(), {"filters": 4}, tmp_path)

Each check raises AssertionError saying what broke. Keep options tiny: they run on a CPU.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from unem.models.spec import ModelSpec

Shape = tuple[int | None, int | None, int]
SIZE_FREE = 64
ODD_SIZE = (37, 45)  # neither a multiple of 2 nor equal: catches padding and transposition bugs


def check_model(
    spec: ModelSpec,
    options: Mapping[str, Any] | None,
    tmp_path: Path,
    *,
    channels: tuple[int, ...] = (1, 3),
    n_classes: int = 3,
) -> None:
    """The whole contract: schema, odd and size-free shapes, two training steps, save/load."""
    from unem.plugins import check_model_spec

    check_model_spec(spec)
    check_options_schema(spec)
    validated = spec.validate(dict(options or {}))
    for n_channels in channels:
        model = check_build(spec, validated, (*ODD_SIZE, n_channels), n_classes)
        check_training(model, n_classes)
        check_round_trip(model, tmp_path / f"{spec.name}-{n_channels}.keras")
        check_build(spec, validated, (None, None, n_channels), n_classes)


def check_options_schema(spec: ModelSpec) -> None:
    """Every option has a default, a description, and bounds (numbers) or choices."""
    for name, info in spec.Options.model_fields.items():
        where = f"{spec.name} option {name!r}"
        assert not info.is_required(), f"{where} has no default"
        assert info.description, f"{where} has no description"
        bounded = any(hasattr(m, "ge") or hasattr(m, "gt") for m in info.metadata) and any(
            hasattr(m, "le") or hasattr(m, "lt") for m in info.metadata
        )
        choices = info.annotation is bool or typing.get_origin(info.annotation) is typing.Literal
        assert bounded or choices, f"{where} needs bounds (ge=, le=) or a fixed set of choices"
    spec.Options()


def check_build(spec: ModelSpec, options: BaseModel, input_shape: Shape, n_classes: int) -> Any:
    """Build, then predict a batch of 2: logits of the input's height and width.

    Unknown sizes are tried at 2× and 3× the model's size multiple."""
    model = spec.build(options, input_shape, n_classes)
    multiple = spec.size_multiple(options)
    height, width = (s or k * multiple for s, k in zip(input_shape[:2], (2, 3), strict=True))
    images = random_images(2, height, width, input_shape[2])
    logits = predict(model, images)
    assert logits.shape == (2, height, width, n_classes), (
        f"{spec.name}: input {images.shape} gave {logits.shape}, "
        f"wanted {(2, height, width, n_classes)}"
    )
    assert np.isfinite(logits).all(), f"{spec.name}: logits are not finite"
    return model


def check_training(model: Any, n_classes: int, steps: int = 2) -> list[float]:
    """A few real Adam steps on random labels; every loss finite. The model is compiled."""
    import keras

    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    height, width = sample_size(model)
    images = random_images(2, height, width, model.input_shape[-1])
    labels = np.random.default_rng(1).integers(0, n_classes, (2, height, width))
    losses = [float(np.ravel(model.train_on_batch(images, labels))[0]) for _ in range(steps)]
    assert np.isfinite(losses).all(), f"{model.name}: training losses {losses}"
    return losses


def check_round_trip(model: Any, path: Path) -> Any:
    """Save as .keras and load without custom objects: the same predictions."""
    import keras

    images = random_images(2, *sample_size(model), model.input_shape[-1])
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(predict(loaded, images), predict(model, images), atol=1e-5)
    return loaded


def sample_size(model: Any) -> tuple[int, int]:
    """The model's input height and width; 64 where it takes any (a multiple of 2^6)."""
    height, width = model.input_shape[1:3]
    return height or SIZE_FREE, width or SIZE_FREE


def random_images(batch: int, height: int, width: int, channels: int) -> np.ndarray:
    """Random images in [0, 1], float32, (batch, height, width, channels)."""
    rng = np.random.default_rng(0)
    return rng.random((batch, height, width, channels), dtype=np.float32)


def predict(model: Any, images: np.ndarray) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(model(images, training=False)))
