"""The convstack 3D flood-filling network (Januszewski et al. 2018; google/ffn's
`convstack_3d`), in Keras 3, and how a trained one is saved in the workspace.

Contract (training and inference both rely on it)
-------------------------------------------------
``build_ffn(options: FFNModelOptions) -> keras.Model``

- input ``(batch, z, y, x, 2)`` float32 with ``(z, y, x) = options.fov``:
  channel 0 is the image, normalised as ``(raw - mean) / std`` with the mean and standard
  deviation of the training preparation (saved in ``model.json``); channel 1 is the seed as
  **logits**: a new object starts from ``logit(0.95)`` at the FOV centre and ``logit(0.05)``
  elsewhere (`unem.ffn.options.SEED_INIT`, `SEED_PAD`; `initial_seed` makes it);
- output ``(batch, z, y, x, 1)`` float32 **logits** of the object mask: the network's update
  added to the input seed (so feeding the output back as the next seed refines it);
- layers: ``conv0_a`` 3³ ReLU, ``conv0_b`` 3³ linear, then ``depth - 1`` pre-activation
  residual modules (ReLU → 3³ conv ReLU → 3³ conv linear, plus the module's input), ReLU and
  a 1³ convolution to one logit. No pooling, "same" padding: full resolution everywhere.
  With depth 12 and 32 features this has 638,433 parameters, as google/ffn's FIB-25 model.

A trained FFN lives like the 2D models (`unem.train2d.trained`): ``models/<name>/model.keras``
beside ``model.json``, whose keys are ``kind`` ("ffn"), ``fov``, ``deltas``, ``depth``,
``features``, ``preset``, ``image_mean``, ``image_std``, ``move_threshold``, ``seed_init``,
``seed_pad``, ``dataset``, ``image_layer``, ``preparation``, ``steps``, ``training`` (the
training options) and ``created_at``. ``load_ffn_model(ws, name)`` returns the Keras model
and that dictionary; ``save_ffn_model`` writes both atomically.

Keras is imported at the top: only workers import this module (the job kinds import it
inside their functions; listing models needs only `unem.ffn.list_ffn_models`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import keras
import numpy as np

from unem.errors import BadInput
from unem.ffn import FFN_KIND
from unem.ffn.options import SEED_INIT, SEED_PAD, FFNModelOptions, logit
from unem.workspace import Workspace

KIND = FFN_KIND


@keras.saving.register_keras_serializable(package="unem.ffn")
class ChannelSlice(keras.layers.Layer):  # type: ignore[misc]
    """Channels `start:stop` of a channels-last tensor (the seed out of image + seed)."""

    def __init__(self, start: int, stop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, inputs: Any) -> Any:
        return inputs[..., self.start : self.stop]

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def _conv(features: int, size: int, name: str, activation: str | None = None) -> Any:
    return keras.layers.Conv3D(features, size, padding="same", activation=activation, name=name)


def build_ffn(options: FFNModelOptions) -> Any:
    """The convstack FFN for inputs of one FOV (see the module's contract)."""
    fov = tuple(options.fov)
    inputs = keras.Input(shape=(*fov, 2), name="image_and_seed")
    seed = ChannelSlice(1, 2, name="seed")(inputs)
    net = _conv(options.features, 3, "conv0_a", "relu")(inputs)
    net = _conv(options.features, 3, "conv0_b")(net)
    for i in range(1, options.depth):
        skip = net
        net = keras.layers.ReLU(name=f"residual{i}_relu")(net)
        net = _conv(options.features, 3, f"conv{i}_a", "relu")(net)
        net = _conv(options.features, 3, f"conv{i}_b")(net)
        net = keras.layers.Add(name=f"residual{i}")([net, skip])
    net = keras.layers.ReLU(name="final_relu")(net)
    update = _conv(1, 1, "conv_lom")(net)
    logits = keras.layers.Add(name="logits")([seed, update])
    return keras.Model(inputs, logits, name=f"ffn_d{options.depth}_f{options.features}")


def initial_seed(shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """Seed logits of a new object: logit(0.95) at the centre, logit(0.05) elsewhere.

    `shape` is (z, y, x); the result is float32 of that shape."""
    seed = np.full(tuple(shape), logit(SEED_PAD), dtype=np.float32)
    seed[tuple(s // 2 for s in shape)] = logit(SEED_INIT)
    return seed


def model_info(options: FFNModelOptions, mean: float, std: float, **extra: Any) -> dict[str, Any]:
    """The `model.json` of a trained FFN (see the module's contract)."""
    return {
        "kind": KIND,
        "fov": list(options.fov),
        "deltas": list(options.deltas),
        "depth": options.depth,
        "features": options.features,
        "image_mean": float(mean),
        "image_std": float(std),
        "seed_init": SEED_INIT,
        "seed_pad": SEED_PAD,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def save_ffn_model(ws: Workspace, name: str, model: Any, info: dict[str, Any]) -> None:
    """Write `model` and its `info` (`model_info`) as `models/<name>/`, replacing a namesake."""
    from unem.train2d.trained import check_model_name, save_trained_model

    check_model_name(name)
    if info.get("kind") != KIND:
        raise ValueError("the info of an FFN model needs kind 'ffn' (use model_info)")
    tmp = ws.new_tmp_dir()
    try:
        path = tmp / "model.keras"
        model.save(path)
        save_trained_model(ws, name, path, info)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def load_ffn_model(ws: Workspace, name: str) -> tuple[Any, dict[str, Any]]:
    """The trained FFN called `name` and its `model.json`; BadInput if it is no FFN."""
    from unem.ffn import get_ffn_model

    trained = get_ffn_model(ws, name)
    model = keras.saving.load_model(trained.keras_path, compile=False)
    if tuple(model.input_shape[1:]) != (*trained.info["fov"], 2):
        raise BadInput(f"Model {name!r} does not take FOVs of {trained.info['fov']} + 2 channels.")
    return model, dict(trained.info)


def options_from_info(info: dict[str, Any]) -> FFNModelOptions:
    """The architecture options a saved model was built with."""
    keys = ("depth", "features", "fov", "deltas")
    return FFNModelOptions.model_validate({k: info[k] for k in keys})
