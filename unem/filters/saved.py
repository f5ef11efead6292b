"""Pipelines saved in the workspace by name: `<workspace>/pipelines/<name>.json`.

A pipeline is validated before it is saved, and written aside then renamed into place, so
a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unem.errors import BadInput, NotFound
from unem.filters.pipeline import Pipeline, load_pipeline
from unem.workspace import Workspace

FOLDER = "pipelines"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def pipelines_dir(ws: Workspace) -> Path:
    path = ws.root / FOLDER
    path.mkdir(exist_ok=True)
    return path


def pipeline_path(ws: Workspace, name: str) -> Path:
    if not NAME.match(name):
        raise BadInput(
            f"Pipeline name {name!r}: use lower-case letters, digits, - and _ (at most 64)."
        )
    return pipelines_dir(ws) / f"{name}.json"


def save_pipeline(ws: Workspace, name: str, data: Any, user: str = "") -> dict[str, Any]:
    """Validate `data` (a pipeline's JSON) and save it as `name`; what was saved."""
    path = pipeline_path(ws, name)
    pipeline = load_pipeline({**data, "name": name} if isinstance(data, dict) else data)
    saved = {
        **pipeline.to_json(),
        "saved_by": user,
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    aside = path.with_name(f".{name}.{os.getpid()}.tmp")
    aside.write_text(json.dumps(saved, indent=2, ensure_ascii=False) + "\n")
    aside.replace(path)
    return saved


def read_saved(ws: Workspace, name: str) -> dict[str, Any]:
    """A saved pipeline's JSON (with who saved it and when)."""
    path = pipeline_path(ws, name)
    if not path.exists():
        raise NotFound(f"No saved pipeline {name!r}.")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def get_saved(ws: Workspace, name: str) -> Pipeline:
    """A saved pipeline, validated again (a filter's options may have changed)."""
    data = read_saved(ws, name)
    return load_pipeline(data)


def list_saved(ws: Workspace) -> list[dict[str, Any]]:
    """Every saved pipeline: name, description, its filters, who saved it and when."""
    found = []
    for path in sorted(pipelines_dir(ws).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced, or not ours
        found.append(
            {
                "name": path.stem,
                "description": data.get("description", ""),
                "filters": [step.get("filter") for step in data.get("steps", [])],
                "saved_by": data.get("saved_by", ""),
                "saved_at": data.get("saved_at", ""),
            }
        )
    return found


def delete_saved(ws: Workspace, name: str) -> None:
    path = pipeline_path(ws, name)
    if not path.exists():
        raise NotFound(f"No saved pipeline {name!r}.")
    path.unlink()
