"""The built-in 2D CNNs with real Keras on a CPU: shapes, padding, training, save/load, options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from unem.models import blocks
from unem.models.builtin import BUILTIN_MODELS
from unem.models.densenet import DenseNet
from unem.models.highway import Highway
from unem.models.resnet import ResNet
from unem.models.spec import ModelSpec
from unem.models.testing import (
    ODD_SIZE,
    check_build,
    check_options_schema,
    check_round_trip,
    check_training,
    predict,
    random_images,
)
from unem.models.unet import UNet

keras = pytest.importorskip("keras")
pytestmark = [
    pytest.mark.timeout(120),
    # Keras converting TF tensors for NumPy 2: not ours to fix, and it hides real warnings.
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

# Two tiny variants of each model, between them covering every option's branches.
VARIANTS: list[tuple[ModelSpec, dict[str, Any], dict[str, Any]]] = [
    (UNet(), {"depth": 2, "base_filters": 4, "dropout": 0.2},
     {"depth": 3, "base_filters": 2, "batch_norm": False, "upsampling": "bilinear"}),
    (ResNet(), {"blocks": 2, "filters": 4, "dropout": 0.2},
     {"blocks": 3, "filters": 4, "dilation_levels": 1, "batch_norm": False}),
    (Highway(), {"units": 2, "filters": 4, "dropout": 0.2},
     {"units": 2, "filters": 4, "kernel_size": 5, "batch_norm": False, "gate_bias": 0.0}),
    (DenseNet(), {"dense_blocks": 1, "layers_per_block": 2, "growth_rate": 4,
                  "initial_filters": 4, "dropout": 0.2},
     {"dense_blocks": 2, "layers_per_block": 1, "growth_rate": 4, "initial_filters": 4,
      "batch_norm": False}),
]  # fmt: skip
CASES = [
    pytest.param(spec, options, channels, id=f"{spec.name}-{channels}ch")
    for spec, *variants in VARIANTS
    for options, channels in zip(variants, (1, 3), strict=True)
]


@pytest.mark.parametrize(("spec", "options", "channels"), CASES)
def test_odd_sizes_train_and_round_trip(
    spec: ModelSpec, options: dict[str, Any], channels: int, tmp_path: Path
) -> None:
    validated = spec.validate(options)
    model = check_build(spec, validated, (*ODD_SIZE, channels), n_classes=3)
    assert model.input_shape == (None, *ODD_SIZE, channels)
    assert model.output_shape == (None, *ODD_SIZE, 3)
    assert model.layers[-1].get_config().get("activation") in (None, "linear")  # logits
    losses = check_training(model, n_classes=3)
    assert len(losses) == 2
    check_round_trip(model, tmp_path / "model.keras")


@pytest.mark.parametrize(("spec", "options", "channels"), CASES)
def test_size_free_models_take_multiples(
    spec: ModelSpec, options: dict[str, Any], channels: int
) -> None:
    validated = spec.validate(options)
    model = check_build(spec, validated, (None, None, channels), n_classes=2)
    multiple = spec.size_multiple(validated)
    images = random_images(1, 5 * multiple, multiple, channels)
    assert predict(model, images).shape == (1, 5 * multiple, multiple, 2)
    names = {layer.name for layer in model.layers}
    assert not names & {"pad_to_multiple", "crop_to_input"}  # the caller pads


@pytest.mark.parametrize(("spec", "options", "channels"), CASES[::2])
def test_internal_padding_equals_padding_by_the_caller(
    spec: ModelSpec, options: dict[str, Any], channels: int
) -> None:
    """A concrete-size model = the size-free model on the zero-padded image, cropped back."""
    validated = spec.validate(options)
    fixed = spec.build(validated, (*ODD_SIZE, channels), 2)
    free = spec.build(validated, (None, None, channels), 2)
    free.set_weights(fixed.get_weights())
    images = random_images(2, *ODD_SIZE, channels)
    (top, bottom), (left, right) = (blocks.pad_amounts(s, spec.size_multiple(validated))
                                    for s in ODD_SIZE)  # fmt: skip
    padded = np.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)))
    expected = predict(free, padded)[:, top : top + ODD_SIZE[0], left : left + ODD_SIZE[1]]
    np.testing.assert_allclose(predict(fixed, images), expected, atol=1e-5)


def test_padding_is_split_around_the_image() -> None:
    assert blocks.pad_amounts(37, 16) == (5, 6)
    assert blocks.pad_amounts(48, 16) == (0, 0)
    assert blocks.pad_amounts(None, 16) == (0, 0)
    assert blocks.dilation_rates(7, 3) == [1, 2, 4, 1, 2, 4, 1]


@pytest.mark.parametrize("model", BUILTIN_MODELS, ids=lambda m: m.name)
def test_defaults_suit_em_segmentation_on_a_cpu(model: type[ModelSpec]) -> None:
    spec = model()
    check_options_schema(spec)
    built = spec.build(spec.Options(), (None, None, 1), 2)
    assert 50_000 < built.count_params() < 5_000_000, built.count_params()
    assert spec.size_multiple(spec.Options()) <= 16


def test_default_unet_is_depth_4_base_16_with_batch_norm() -> None:
    options = UNet().Options()
    assert (options.depth, options.base_filters, options.batch_norm) == (4, 16, True)
    assert UNet().size_multiple(options) == 16


@pytest.mark.parametrize("model", BUILTIN_MODELS, ids=lambda m: m.name)
def test_options_refuse_out_of_bounds_values_and_unknown_fields(model: type[ModelSpec]) -> None:
    spec = model()
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        spec.validate({"depht": 3})
    for name, info in spec.Options.model_fields.items():
        for m in info.metadata:
            for bound, outside in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
                if hasattr(m, bound):
                    value = getattr(m, bound) + outside
                    with pytest.raises(ValidationError, match=name):
                        spec.validate({name: value})
    with pytest.raises(ValidationError):
        spec.validate({next(iter(spec.Options.model_fields)): "lots"})


def test_unet_refuses_depth_7_and_bad_upsampling() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 6"):
        UNet().validate({"depth": 7})
    with pytest.raises(ValidationError, match="upsampling"):
        UNet().validate({"upsampling": "nearest"})


def test_building_needs_keras_but_importing_the_specs_does_not() -> None:
    code = (
        "import sys, unem.models.builtin, unem.plugins\n"
        "r = unem.plugins.discover_models()\n"
        "assert [m['name'] for m in r.to_json()['models']]"
        " == ['unet', 'resnet', 'highway', 'densenet']\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
