"""Trained models in the workspace: `models/<name>/model.keras` beside `model.json`.

`model.json` says how the model was trained (its spec and options, channels, classes,
loss and activation, the data and the validation scores), which is all inference needs
to feed it and read its output. Listing reads only these small files: no Keras.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unem.errors import BadInput, NotFound
from unem.workspace import Workspace

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KERAS_FILE = "model.keras"
INFO_FILE = "model.json"
CNN2D = "cnn2d"  # the `kind` of a model.json that names none


@dataclass(frozen=True)
class TrainedModel:
    name: str
    folder: Path
    info: dict[str, Any]

    @property
    def keras_path(self) -> Path:
        return self.folder / KERAS_FILE

    @property
    def channels(self) -> int | None:
        """Input channels; None for an imported model (read from the model itself)."""
        return int(self.info["channels"]) if "channels" in self.info else None

    @property
    def n_classes(self) -> int | None:
        return int(self.info["n_classes"]) if "n_classes" in self.info else None

    @property
    def activation(self) -> str:
        return str(self.info.get("activation", "softmax"))

    @property
    def size_multiple(self) -> int:
        return int(self.info.get("size_multiple", 1))

    @property
    def downsample(self) -> int:
        """The model sees images at 1/downsample of their resolution (see resolution.py)."""
        return int(self.info.get("downsample", 1))

    def downloadable_files(self) -> dict[str, Path]:
        """The files one may download: regular files directly in the model's folder (the
        model, its exports), never a folder, nor a link leading out of it."""
        folder = self.folder.resolve()
        listed = {name: self.folder / name for name in self.to_json()["files"]}
        return {n: p for n, p in listed.items() if p.is_file() and p.resolve().parent == folder}

    def to_json(self) -> dict[str, Any]:
        exports = sorted(p.name for p in self.folder.iterdir() if p.name not in (INFO_FILE,))
        return {"name": self.name, **self.info, "files": exports}


def models_dir(ws: Workspace) -> Path:
    return ws.root / "models"


def check_model_name(name: str) -> str:
    if not MODEL_NAME.match(name):
        raise BadInput(f"Model name {name!r}: use letters, digits, '.', '-' and '_' (at most 64).")
    return name


def list_trained_models(ws: Workspace, kind: str = CNN2D) -> list[TrainedModel]:
    """Every trained model of `kind` (2D CNNs unless told; "ffn": flood-filling networks)
    with a readable `model.json`, newest first."""
    found = []
    for info_path in models_dir(ws).glob(f"*/{INFO_FILE}"):
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            continue  # a model being written, or damaged: not offered
        if info.get("kind", CNN2D) != kind:
            continue
        if (info_path.parent / KERAS_FILE).exists():
            found.append(TrainedModel(info_path.parent.name, info_path.parent, info))
    return sorted(found, key=lambda m: str(m.info.get("created_at", "")), reverse=True)


def get_trained_model(ws: Workspace, name: str) -> TrainedModel:
    """The trained model called `name`, or NotFound listing those there are."""
    for model in list_trained_models(ws):
        if model.name == name:
            return model
    known = ", ".join(m.name for m in list_trained_models(ws)) or "none yet: train one first"
    raise NotFound(f"No trained model {name!r} in this workspace (models: {known}).")


def save_trained_model(ws: Workspace, name: str, keras_file: Path, info: dict[str, Any]) -> Path:
    """Copy a `.keras` file and its description into `models/<name>/`, replacing a namesake.

    The folder is written aside and renamed into place, so a reader never sees half a model.
    """
    check_model_name(name)
    tmp = ws.new_tmp_dir()
    try:
        staged = tmp / name
        staged.mkdir()
        shutil.copy2(keras_file, staged / KERAS_FILE)
        (staged / INFO_FILE).write_text(json.dumps(info, indent=2, default=str))
        target = models_dir(ws) / name
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def import_model_file(ws: Workspace, path: Path, name: str = "") -> TrainedModel:
    """Copy a `.keras` file (with the `model.json` beside it, if there is one) into the
    workspace's models. A model trained elsewhere has no `model.json`: inference then reads
    its channels and classes from the model itself and uses softmax."""
    if path.suffix != ".keras" or not path.is_file():
        raise BadInput(f"{path} is not a .keras file.")
    info_path = path.parent / INFO_FILE
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except ValueError as error:
            raise BadInput(f"{info_path} is not valid JSON: {error}") from error
    info.setdefault("imported_from", str(path))
    stem = path.stem if path.stem != "model" else path.parent.name  # models/<name>/model.keras
    name = check_model_name(name or _free_name(ws, stem))
    save_trained_model(ws, name, path, info)
    return get_trained_model(ws, name)


def _free_name(ws: Workspace, stem: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:56] or "model"
    taken = {m.name for m in list_trained_models(ws)}
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def delete_trained_model(ws: Workspace, name: str) -> None:
    shutil.rmtree(get_trained_model(ws, name).folder)
