"""The example plugin is found by discovery and honours the ModelSpec contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from unem.models.testing import check_model
from unem.plugins import discover_models

HERE = Path(__file__).parent
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_discovery_finds_the_example_among_the_builtins() -> None:
    registry = discover_models([HERE])
    assert registry.broken == []
    assert list(registry.models) == ["unet", "resnet", "highway", "densenet", "tiny-fcn"]
    assert registry.get("tiny-fcn").to_json()["fields"] == ["layers", "filters"]


def test_the_example_builds_trains_and_round_trips(tmp_path: Path) -> None:
    spec = discover_models([HERE / "tiny_fcn.py"]).get("tiny-fcn")
    check_model(spec, {"layers": 2, "filters": 4}, tmp_path)


def test_the_example_refuses_bad_options() -> None:
    spec = discover_models([HERE / "tiny_fcn.py"]).get("tiny-fcn")
    for bad in ({"layers": 0}, {"filters": 1000}, {"layer": 3}):
        with pytest.raises(ValidationError):
            spec.validate(bad)
