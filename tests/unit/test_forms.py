"""Option forms show every default, those made by a factory (lists, nested models) too."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from unem.ffn.options import FFNInferOptions, FFNModelOptions, FFNPrepOptions
from unem.forms import form_schema


class Nested(BaseModel):
    flip: bool = True


class Example(BaseModel):
    sizes: list[int] = Field(default_factory=lambda: [3, 5])
    nested: Nested = Field(default_factory=Nested)
    plain: int = 4


def defaults_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {name: field["default"] for name, field in schema["properties"].items()}


def test_factory_defaults_appear_in_the_schema() -> None:
    assert defaults_of(form_schema(Example)) == {
        "sizes": [3, 5],
        "nested": {"flip": True},
        "plain": 4,
    }


@pytest.mark.parametrize("model", [FFNModelOptions, FFNPrepOptions, FFNInferOptions])
def test_ffn_list_options_show_their_defaults(model: type[BaseModel]) -> None:
    schema = form_schema(model)
    listed = [name for name, field in schema["properties"].items() if field.get("type") == "array"]
    assert listed, "each of these models has list-valued options"
    for name in listed:
        made = model.model_fields[name].get_default(call_default_factory=True)
        assert schema["properties"][name].get("default") == made, name
