"""JSON schemas of option models, as the web forms are generated from them.

Pydantic leaves a field's default out of its JSON schema when the default comes from a
factory (`Field(default_factory=...)`, as every list- or model-valued default must), so
the form would show those fields empty. The generator here calls the factory instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema


class WithFactoryDefaults(GenerateJsonSchema):
    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return schema.get("default", NoDefault)


def form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with every default shown, factory-made ones included."""
    return model.model_json_schema(schema_generator=WithFactoryDefaults)
