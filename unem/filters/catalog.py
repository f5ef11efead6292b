"""The filter catalog: every filter a pipeline step can use, declared once.

A filter has a name, a title, a pydantic `Options` schema (defaults, bounds and
descriptions: the web form is generated from it and every step is validated with it), the
kinds of data it takes and gives, the dimensions it works in, and `apply`, a pure function
on a numpy array (a 2D slice or a 3D volume) that never modifies its input.

How a 3D step runs over a layer too large for memory is declared here as well: block-wise
with a `halo` (the margin the filter needs around a block to give the same result as on the
whole volume), `sequential` (slice after slice, remembering the last), `stream` (a custom
pass or two over the volume with bounded memory), or, when none applies, on the whole
volume at once. 2D steps always stream slice by slice (see `unem.filters.runner`).

The catalog module imports no array library: filter modules import scipy, scikit-image,
cc3d and fastremap inside their functions, so the server reads schemas without them.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unem.errors import BadInput, NotFound
from unem.forms import form_schema

if TYPE_CHECKING:
    from unem.filters.runner import RunContext

# What flows between steps: intensities (image: as stored; prediction: float32 in [0, 1]),
# binary masks (bool), or instance labels (uint32/uint64, 0 = background).
DATA_KINDS = ("image", "prediction", "mask", "labels")
INTENSITY = frozenset({"image", "prediction"})
FILTER_MODULES = ("unem.filters.intensity", "unem.filters.binary", "unem.filters.labelling")

Dims = Literal["2d", "3d"]
Apply = Callable[[Any, Any], Any]  # (array, options) -> array
Halo = Callable[[Any], tuple[int, int, int]]  # options -> margin along z, y, x
Stream = Callable[[Any, Any, "RunContext"], Iterator[Any]]  # (volume, options, run) -> slices
Sequential = Callable[[Iterator[Any], Any], Iterator[Any]]  # (slices, options) -> slices


class FilterOptions(BaseModel):
    """Base of every filter's options: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class DimsOptions(FilterOptions):
    """Options of a filter that works on each slice alone or across slices."""

    dims: Dims = Field("2d", description="2d: each slice alone; 3d: across slices.")


@dataclass(frozen=True)
class Filter:
    """One filter of the catalog (see the module's docstring)."""

    name: str
    title: str
    category: str
    description: str
    options: type[FilterOptions]
    apply: Apply
    inputs: frozenset[str]
    output: str | None = None  # the kind it gives; None: the kind it was given
    dims: tuple[str, ...] = ("2d",)
    mode: Callable[[Any], str] | None = None  # which dims the options ask for
    pointwise: bool = False  # each voxel alone: the same on a slice and a volume
    new_ids: bool = False  # numbers objects 1..n per call (made unique across slices)
    halo: Halo | None = None
    sequential: Sequential | None = None
    stream: Stream | None = None

    def validate(self, options: Mapping[str, Any] | None, where: str = "") -> FilterOptions:
        """The options as the schema reads them, or BadInput naming every bad field."""
        label = where or self.name
        try:
            return self.options.model_validate(dict(options or {}))
        except ValidationError as error:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in error.errors()
            ]
            summary = "; ".join(f"{p['field'] or 'options'}: {p['message']}" for p in problems)
            raise BadInput(f"{label}: {summary}", problems) from error

    def mode_of(self, options: Any) -> str:
        """Whether these options ask for "2d" (slice by slice) or "3d" (across slices)."""
        if self.pointwise or len(self.dims) == 1:
            return "2d" if self.pointwise else self.dims[0]
        if self.mode is not None:
            return self.mode(options)
        return str(options.dims)

    def strategy(self, options: Any) -> str:
        """How a step runs over a volume: slice, block, sequential, stream or whole."""
        return "slice" if self.mode_of(options) == "2d" else self.three_d() or "whole"

    def three_d(self) -> str | None:
        """How the filter runs across slices (None: it never does)."""
        if self.pointwise or "3d" not in self.dims:
            return None
        if self.halo is not None:
            return "block"
        if self.sequential is not None:
            return "sequential"
        return "stream" if self.stream is not None else "whole"

    def output_kind(self, input_kind: str) -> str:
        return self.output or input_kind

    def to_json(self) -> dict[str, Any]:
        schema = form_schema(self.options)
        return {
            "name": self.name,
            "title": self.title,
            "category": self.category,
            "description": self.description,
            "inputs": sorted(self.inputs),
            "output": self.output,
            "dims": ["2d", "3d"] if self.pointwise else list(self.dims),
            "pointwise": self.pointwise,
            "three_d": self.three_d(),
            "schema": schema,
            "fields": list(schema.get("properties", {})),
        }


@dataclass
class Catalog:
    filters: dict[str, Filter]

    def register(self, item: Filter) -> None:
        if item.name in self.filters:
            raise ValueError(f"a filter named {item.name!r} is already registered")
        if not item.inputs <= set(DATA_KINDS) or (item.output and item.output not in DATA_KINDS):
            raise ValueError(f"filter {item.name!r}: kinds must be among {DATA_KINDS}")
        both = len(item.dims) == 2 and not item.pointwise
        if both and item.mode is None and "dims" not in item.options.model_fields:
            raise ValueError(f"filter {item.name!r} works in 2d and 3d: give it a dims option")
        self.filters[item.name] = item

    def get(self, name: str) -> Filter:
        if name not in self.filters:
            raise NotFound(f"Unknown filter {name!r} (known: {', '.join(self.filters)}).")
        return self.filters[name]

    def to_json(self) -> dict[str, Any]:
        return {"filters": [item.to_json() for item in self.filters.values()]}


@functools.cache
def catalog() -> Catalog:
    """Every filter, in the order the filter modules register them."""
    found = Catalog({})
    for module in FILTER_MODULES:
        importlib.import_module(module).register_filters(found.register)
    return found


def get_filter(name: str) -> Filter:
    return catalog().get(name)
