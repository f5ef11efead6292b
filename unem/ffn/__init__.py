"""Flood-filling networks (google/ffn re-implemented on Keras 3): training-data preparation
(`prep`), the model (`model`), training (`train`), inference and their jobs.

This package module stays light (no NumPy, no Keras): the server lists trained FFN models
through it. Options live in `unem.ffn.options`; the model's contract in `unem.ffn.model`.
"""

from __future__ import annotations

from unem.errors import NotFound
from unem.train2d.trained import TrainedModel, list_trained_models
from unem.workspace import Workspace

FFN_KIND = "ffn"  # `kind` in the model.json of a trained FFN


def list_ffn_models(ws: Workspace) -> list[TrainedModel]:
    """The workspace's trained FFN models (newest first)."""
    return list_trained_models(ws, kind=FFN_KIND)


def get_ffn_model(ws: Workspace, name: str) -> TrainedModel:
    """The trained FFN model `name`, or NotFound listing the FFN models there are."""
    models = list_ffn_models(ws)
    for model in models:
        if model.name == name:
            return model
    known = ", ".join(m.name for m in models) or "none yet: train one first"
    raise NotFound(f"No trained FFN model {name!r} in this workspace (FFN models: {known}).")
