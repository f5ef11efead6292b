"""The convstack FFN: shapes and sizes of the presets, the seed added to the output, the
initial seed, and trained models saved to and loaded from the workspace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unem.errors import NotFound
from unem.ffn import list_ffn_models
from unem.ffn.model import (
    build_ffn,
    initial_seed,
    load_ffn_model,
    model_info,
    options_from_info,
    save_ffn_model,
)
from unem.ffn.options import PRESETS, SEED_INIT, SEED_PAD, FFNModelOptions, logit
from unem.workspace import Workspace


@pytest.mark.parametrize(
    ("preset", "shape", "params"),
    [
        # google/ffn's FIB-25 model (depth 12) and UNI-EM's sparse-z one (depth 9)
        ("isotropic", (33, 33, 33), 638_433),
        ("sparse_z", (17, 33, 33), 472_353),
        ("cpu_sparse_z", (9, 17, 17), 195_553),
    ],
)
def test_preset_shapes_and_parameters(preset: str, shape: tuple[int, ...], params: int) -> None:
    model = build_ffn(PRESETS[preset])
    assert model.input_shape == (None, *shape, 2)
    assert model.output_shape == (None, *shape, 1)
    assert model.count_params() == params
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv3D"]
    depth = PRESETS[preset].depth
    assert len(convs) == 2 * depth + 1  # conv0_a/b, depth-1 residual pairs, the 1³ head
    assert convs[-1].kernel_size == (1, 1, 1)


def test_the_output_is_the_seed_plus_the_update() -> None:
    model = build_ffn(PRESETS["cpu_tiny"])
    head = model.get_layer("conv_lom")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    inputs = np.random.default_rng(0).normal(size=(2, 9, 17, 17, 2)).astype(np.float32)
    output = np.asarray(model(inputs))
    assert np.allclose(output[..., 0], inputs[..., 1])  # a zero update leaves the seed
    head.set_weights([w + 0.1 for w in head.get_weights()])
    assert not np.allclose(np.asarray(model(inputs))[..., 0], inputs[..., 1])


def test_initial_seed() -> None:
    seed = initial_seed((3, 5, 7))
    assert seed.dtype == np.float32 and seed.shape == (3, 5, 7)
    assert seed[1, 2, 3] == pytest.approx(logit(SEED_INIT))
    seed[1, 2, 3] = logit(SEED_PAD)
    assert np.allclose(seed, logit(SEED_PAD))


def test_save_and_load_a_trained_ffn(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    options = FFNModelOptions(depth=2, features=8, fov=[5, 7, 7], deltas=[1, 2, 2])
    model = build_ffn(options)
    info = model_info(options, 128.0, 30.0, preset="cpu_tiny", dataset="d", image_layer="image")
    save_ffn_model(ws, "tiny-ffn", model, info)
    assert [m.name for m in list_ffn_models(ws)] == ["tiny-ffn"]
    loaded, saved = load_ffn_model(ws, "tiny-ffn")
    assert saved["kind"] == "ffn" and saved["fov"] == [5, 7, 7] and saved["image_std"] == 30
    assert options_from_info(saved) == options
    inputs = np.random.default_rng(1).normal(size=(1, 5, 7, 7, 2)).astype(np.float32)
    assert np.allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), atol=1e-6)
    with pytest.raises(NotFound, match="tiny-ffn"):
        load_ffn_model(ws, "other")
