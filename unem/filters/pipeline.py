"""Pipelines: an ordered list of filter steps with their options, saved and loaded as JSON.

```json
{"format": "unem-pipeline", "version": 1, "name": "membranes", "description": "",
 "steps": [{"filter": "gaussian", "options": {"sigma": 2.0, "sigma_z": 0.0}},
           {"filter": "threshold", "options": {"threshold": 0.4, "below": true}}]}
```

Loading validates every step against its filter's schema; a problem is a BadInput naming
the step (1-based, with its filter) and the field. `check` follows the data kinds through
the steps (an image becomes a mask, a mask labels, ...) and refuses a step given a kind it
does not take. Which layer a result may become is decided here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from unem.errors import BadInput, NotFound
from unem.filters.catalog import Filter, FilterOptions, get_filter

FORMAT = "unem-pipeline"
VERSION = 1
TOP_KEYS = {"format", "version", "name", "description", "steps", "saved_by", "saved_at"}
MAX_STEPS = 50
# A layer's kind → the data a pipeline reads from it.
LAYER_DATA = {"image": "image", "prediction": "prediction", "segmentation": "labels",
              "groundtruth": "labels"}  # fmt: skip
# The data a pipeline gives → the layer kinds it may become (the first: "auto").
OUTPUT_LAYERS = {
    "image": ("image", "prediction"),
    "prediction": ("prediction", "image"),
    "mask": ("segmentation", "prediction", "image"),
    "labels": ("segmentation",),
}
KIND_WORDS = {"image": "an image", "prediction": "a prediction", "mask": "a mask",
              "labels": "labels"}  # fmt: skip


@dataclass(frozen=True)
class Step:
    filter: Filter
    options: FilterOptions
    index: int = 0  # position in its pipeline, from 0

    @property
    def label(self) -> str:
        return f"Step {self.index + 1} ({self.filter.name})"

    @property
    def mode(self) -> str:
        return self.filter.mode_of(self.options)

    @property
    def strategy(self) -> str:
        return self.filter.strategy(self.options)

    def to_json(self) -> dict[str, Any]:
        return {"filter": self.filter.name, "options": self.options.model_dump(mode="json")}


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Step, ...]
    name: str = ""
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "description": self.description,
            "steps": [step.to_json() for step in self.steps],
        }

    def kinds(self, input_kind: str) -> list[str]:
        """The kind of data after each step, from `input_kind`; BadInput at the first step
        given a kind it does not take."""
        kinds, kind = [], input_kind
        for step in self.steps:
            if kind not in step.filter.inputs:
                words = [KIND_WORDS[k] for k in sorted(step.filter.inputs)]
                takes = " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 2 else words)
                raise BadInput(
                    f"{step.label} takes {takes}, but is given {KIND_WORDS[kind]}.",
                    {"step": step.index + 1, "filter": step.filter.name},
                )
            kind = step.filter.output_kind(kind)
            kinds.append(kind)
        return kinds

    def output_kind(self, input_kind: str) -> str:
        kinds = self.kinds(input_kind)
        return kinds[-1] if kinds else input_kind


def make_step(index: int, data: Any) -> Step:
    """Step `index` (from 0) of a pipeline from its JSON, validated."""
    where = f"Step {index + 1}"
    if not isinstance(data, Mapping) or not isinstance(data.get("filter"), str):
        raise BadInput(f"{where}: a step is an object with a filter name and its options.")
    if set(data) - {"filter", "options"}:
        extra = ", ".join(sorted(set(data) - {"filter", "options"}))
        raise BadInput(f"{where}: unknown keys {extra} (a step has filter and options).")
    try:
        item = get_filter(data["filter"])
    except NotFound as error:
        raise BadInput(f"{where}: {error.message}") from error
    options = data.get("options") or {}
    if not isinstance(options, Mapping):
        raise BadInput(f"{where} ({item.name}): options must be an object.")
    try:
        return Step(item, item.validate(options, f"{where} ({item.name})"), index)
    except BadInput as error:
        found = cast(list[dict[str, Any]], error.detail or [])  # as Filter.validate gives it
        problems = [{"step": index + 1, "filter": item.name, **p} for p in found]
        raise BadInput(error.message, problems) from error


def make_pipeline(steps: Sequence[Any], name: str = "", description: str = "") -> Pipeline:
    if not isinstance(steps, Sequence) or isinstance(steps, str):
        raise BadInput("steps must be a list of {filter, options} objects.")
    if len(steps) > MAX_STEPS:
        raise BadInput(f"A pipeline has at most {MAX_STEPS} steps.")
    return Pipeline(tuple(make_step(i, s) for i, s in enumerate(steps)), name, description)


def load_pipeline(data: Any) -> Pipeline:
    """A pipeline from its JSON (as `Pipeline.to_json` writes it; format and version may
    be left out, who saved it and when are ignored), every step validated."""
    if not isinstance(data, Mapping):
        raise BadInput("A pipeline is a JSON object with a list of steps.")
    if set(data) - TOP_KEYS:
        raise BadInput(f"Unknown pipeline keys: {', '.join(sorted(set(data) - TOP_KEYS))}.")
    if data.get("format", FORMAT) != FORMAT or data.get("version", VERSION) != VERSION:
        raise BadInput(f"Not a {FORMAT} version {VERSION} file.")
    name, description = data.get("name") or "", data.get("description") or ""
    if not isinstance(name, str) or not isinstance(description, str):
        raise BadInput("A pipeline's name and description are text.")
    return make_pipeline(data.get("steps", []), name, description)


def output_layer_kind(data_kind: str, wanted: str = "auto") -> str:
    """The layer kind a result of `data_kind` becomes ("auto": the natural one)."""
    allowed = OUTPUT_LAYERS[data_kind]
    if wanted == "auto":
        return allowed[0]
    if wanted not in allowed:
        raise BadInput(
            f"The pipeline gives {KIND_WORDS[data_kind]}, which can become a layer of kind "
            f"{' or '.join(allowed)}, not {wanted}."
        )
    return wanted
