"""Export a trained model beside its `model.keras`: TF SavedModel (zipped) or ONNX.

Both go through Keras' own `model.export`, so what is exported is the model's forward
pass (logits; the activation its loss used is written in `model.json`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from unem.train2d.trained import get_trained_model
from unem.workspace import Workspace

ExportFormat = Literal["keras", "savedmodel", "onnx"]
FILES: dict[str, str] = {
    "keras": "model.keras",
    "savedmodel": "saved_model.zip",
    "onnx": "model.onnx",
}


def export_trained_model(ws: Workspace, name: str, format: ExportFormat) -> Path:
    """The exported file in the model's folder (written aside, then renamed into place)."""
    import keras

    trained = get_trained_model(ws, name)
    target = trained.folder / FILES[format]
    if format == "keras":
        return trained.keras_path  # it is already one
    model = keras.models.load_model(trained.keras_path, compile=False)
    # Keras exports only a model that has been called: trace it once on a small input.
    side = max(16, trained.size_multiple)
    model.predict(np.zeros((1, side, side, int(model.input_shape[-1])), np.float32), verbose=0)
    tmp = ws.new_tmp_dir()
    try:
        if format == "onnx":
            written = tmp / FILES["onnx"]
            model.export(str(written), format="onnx", verbose=False)
        else:
            model.export(str(tmp / "saved_model"), format="tf_saved_model", verbose=False)
            written = Path(shutil.make_archive(str(tmp / "saved_model"), "zip", tmp, "saved_model"))
        written.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
