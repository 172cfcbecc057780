"""The flavor registry: what is available, and a third-party flavor plugged in."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.formats import (
    Flavor,
    FlavorOutput,
    ModelFormatError,
    ModelInfo,
    available_flavors,
    base,
    flavor_names,
    load_model,
    register_flavor,
    save_model,
)


@dataclass
class LinearScore:
    """A model simple enough to store as JSON."""

    weights: list[float]

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        return [sum(w * x for w, x in zip(self.weights, row, strict=True)) for row in rows]


class LinearScoreFlavor(Flavor):
    name = "linear_score"

    def matches(self, model: object) -> bool:
        return isinstance(model, LinearScore)

    def save(self, model: Any, directory: Path) -> FlavorOutput:
        (directory / "weights.json").write_text(json.dumps(model.weights))
        return FlavorOutput(model_format="json", requires=())

    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        return LinearScore(json.loads((directory / info.file("weights.json").name).read_text()))


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    base.flavor_names()  # the built-ins are in
    monkeypatch.setattr(base, "_registry", dict(base._registry))


@pytest.mark.usefixtures("isolated_registry")
def test_a_registered_flavor_is_detected_saved_and_loaded(tmp_path: Path) -> None:
    register_flavor(LinearScoreFlavor())
    model = LinearScore([0.5, -1.0])
    info = save_model(model, tmp_path / "m")  # detected: no pickle needed

    assert info.flavor == "linear_score" and "linear_score" in flavor_names()
    assert load_model(tmp_path / "m").predict([[2.0, 1.0]]) == [0.0]
    with pytest.raises(ModelFormatError, match="already registered"):
        register_flavor(LinearScoreFlavor())
    register_flavor(LinearScoreFlavor(), replace=True)


@pytest.mark.usefixtures("isolated_registry")
def test_a_flavor_name_must_be_plain() -> None:
    class Bad(LinearScoreFlavor):
        name = "../Bad Name"

    with pytest.raises(ModelFormatError, match="not valid"):
        register_flavor(Bad())


def test_available_flavors_follow_what_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"lightgbm", "onnx", "pickle", "python", "sklearn", "xgboost"} <= set(
        available_flavors()
    )
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if it were not installed
    assert "xgboost" not in available_flavors()
    assert "xgboost" in flavor_names()  # still known, so its models give a clear error
