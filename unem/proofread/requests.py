"""Edit requests as clients send them: one schema per edit kind, validated, turned into a tool.

The web layer passes the JSON it received; a bad request becomes a BadInput message.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unem.errors import BadInput
from unem.proofread.edits import ChangeMaker

Point2 = tuple[int, int]
Point3 = tuple[int, int, int]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MergeParams(Params):
    segments: list[int] = Field(min_length=2, max_length=1000)


class PaintParams(Params):
    z: int = Field(ge=0)
    points: list[Point2] = Field(min_length=1, max_length=10_000)
    radius: float = Field(ge=0, le=512)
    segment: int = Field(ge=0)
    only_on: int | None = None


class EraseParams(Params):
    z: int = Field(ge=0)
    points: list[Point2] = Field(min_length=1, max_length=10_000)
    radius: float = Field(ge=0, le=512)
    only_on: int | None = None


class FillParams(Params):
    z: int = Field(ge=0)
    y: int = Field(ge=0)
    x: int = Field(ge=0)
    segment: int = Field(ge=0)
    depth: int = Field(default=0, ge=0, le=64)
    radius: int = Field(default=1024, ge=1, le=4096)


class SplitLineParams(Params):
    z: int = Field(ge=0)
    points: list[Point2] = Field(min_length=2, max_length=10_000)
    band: float = Field(default=4.0, ge=1, le=64)
    segment: int | None = Field(default=None, gt=0)  # the selected segment, if any


class CutParams(Params):
    segment: int = Field(gt=0)
    seeds_a: list[Point3] = Field(min_length=1, max_length=1000)
    seeds_b: list[Point3] = Field(min_length=1, max_length=1000)
    margin: int = Field(default=32, ge=1, le=512)


class SplitFragmentsParams(Params):
    segment: int = Field(gt=0)
    seeds_a: list[int] = Field(min_length=1)
    seeds_b: list[int] = Field(min_length=1)


# Each kind: its schema, and how to build its tool from `unem.proofread.tools` (imported on
# the first edit, not at start-up: it pulls in scipy and scikit-image).
EDIT_KINDS: dict[str, tuple[type[Params], Callable[[ModuleType, Any], ChangeMaker]]] = {
    "merge": (MergeParams, lambda t, p: t.merge(p.segments)),
    "paint": (PaintParams, lambda t, p: t.paint(p.z, p.points, p.radius, p.segment, p.only_on)),
    "erase": (EraseParams, lambda t, p: t.paint(p.z, p.points, p.radius, 0, p.only_on)),
    "fill": (FillParams, lambda t, p: t.fill(p.z, p.y, p.x, p.segment, p.depth, p.radius)),
    "split_line": (SplitLineParams,
                   lambda t, p: t.split_line(p.z, p.points, p.band, segment=p.segment)),
    "cut": (CutParams, lambda t, p: t.cut(p.segment, p.seeds_a, p.seeds_b, p.margin)),
    "split_fragments": (SplitFragmentsParams,
                        lambda t, p: t.split_fragments(p.segment, p.seeds_a, p.seeds_b)),
}
PREVIEW_KINDS = frozenset({"split_line", "cut", "split_fragments"})


def parse_edit(kind: str, params: Any) -> tuple[dict[str, Any], ChangeMaker]:
    """The validated parameters (as stored in the log) and the tool for an edit request."""
    if kind not in EDIT_KINDS:
        raise BadInput(f"Unknown edit {kind!r}; one of {', '.join(EDIT_KINDS)}.")
    schema, tool = EDIT_KINDS[kind]
    try:
        parsed = schema.model_validate(params if isinstance(params, dict) else {})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise BadInput(f"Bad {kind} request: {problems}") from error
    from unem.proofread import tools

    return parsed.model_dump(), tool(tools, parsed)
