"""Aliases: promotion behind gates, overrides, the audit log, rollback, canary, shadow,
the serial serving polls, stored evaluations."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.config import load_config
from shipyard.core.errors import GateFailed, NotFoundError, ReferenceError_
from shipyard.models import GateResult, ModelInputError
from shipyard.models.registry import ModelRegistry
from tests.models.conftest import NUMERIC, ChurnProject

PASSED = GateResult("recall_at_precision_0.8", "metric", 0.64, ">= 0.60", "passed")
SKIPPED = GateResult("vs_champion", "champion", None, ">= champion - 0.01", "skipped")
FAILED = GateResult("latency_p99_ms", "latency", 412.0, "<= 200", "failed")


@pytest.fixture(scope="session")
def three_version_template(
    tmp_path_factory: pytest.TempPathFactory, churn_template: ChurnProject, numeric_xy: Any
) -> Path:
    """The churn project with churn@v1..v3 registered (built once, copied per test)."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("three-versions") / "project"
    shutil.copytree(churn_template.root, root)
    X, y = numeric_xy
    with ModelRegistry.open(load_config(root)) as registry:
        for c in (0.1, 1.0, 10.0):
            model = LogisticRegression(C=c, max_iter=300).fit(X.to_numpy(), y)
            registry.register("churn", model=model, input_example=X.head(2))
    return root


@pytest.fixture
def three_versions(tmp_path: Path, three_version_template: Path) -> Iterator[ModelRegistry]:
    root = tmp_path / "project"
    shutil.copytree(three_version_template, root)
    with ModelRegistry.open(load_config(root)) as registry:
        yield registry


def test_promote_needs_a_passing_evaluation(three_versions: ModelRegistry) -> None:
    registry = three_versions
    with pytest.raises(GateFailed, match="no stored evaluation.*shipyard models evaluate"):
        registry.promote("churn@v1", "champion")
    registry.record_evaluation(
        "churn@v1", dataset="churn@v1", metrics={"auc": 0.81}, gate_results=(PASSED, SKIPPED)
    )
    move = registry.promote("churn@v1", "champion", reason="first model", actor="ana")
    assert (move.from_version, move.to_version, move.actor) == (None, 1, "ana")
    assert move.gate_results == (PASSED, SKIPPED) and not move.override  # skipped is no failure
    assert registry.get("churn@champion").number == 1
    assert registry.get("churn@v1").aliases == ("champion",)

    registry.record_evaluation("churn@v2", metrics={"auc": 0.7}, gate_results=(PASSED, FAILED))
    with pytest.raises(GateFailed, match=r"latency_p99_ms = 412 \(needs <= 200\)"):
        registry.promote("churn@v2", "champion")
    assert registry.get("churn@champion").number == 1  # nothing moved
    with pytest.raises(ModelInputError, match="explicit reason"):
        registry.promote("churn@v2", "champion", override_reason="   ")
    forced = registry.promote("churn@v2", "champion", override_reason="incident 123 hotfix")
    assert forced.override and "incident 123 hotfix" in forced.reason
    assert forced.gate_results == (PASSED, FAILED)
    # A newer passing evaluation of v2 replaces the failed one for promotion.
    registry.record_evaluation("churn@v2", metrics={"auc": 0.82}, gate_results=(PASSED,))
    assert registry.promote("churn@v2", "challenger").override is False
    # Never evaluated, forced: marked, and says so.
    unevaluated = registry.promote("churn@v3", "shadow-test", override_reason="smoke test")
    assert unevaluated.override and "not evaluated" in unevaluated.reason


def test_set_alias_refuses_failed_gates_unless_overridden(three_versions: ModelRegistry) -> None:
    registry = three_versions
    with pytest.raises(GateFailed):
        registry.set_alias("churn@v3", "champion", gate_results=(FAILED,))
    move = registry.set_alias(
        "churn@v3", "champion", gate_results=(FAILED,), override_reason="approved by PM"
    )
    assert move.override
    with pytest.raises(ModelInputError, match="GateResult"):
        registry.set_alias("churn@v3", "champion", gate_results=({"gate": "x"},))  # type: ignore[arg-type]
    with pytest.raises(ModelInputError, match="sequence of GateResult"):
        registry.set_alias("churn@v3", "champion", gate_results="passed")  # type: ignore[arg-type]


def test_alias_names_are_checked(three_versions: ModelRegistry) -> None:
    registry = three_versions
    for bad, pattern in (
        ("v2", "reads as a version number"),
        ("cafe", "reads as a version id prefix"),
        ("", "non-empty"),
        ("two words", "not a valid alias|neither an alias"),
        ("x" * 80, "not a valid alias|neither an alias"),
    ):
        with pytest.raises((ModelInputError, ReferenceError_), match=pattern):
            registry.set_alias("churn@v1", bad)
    with pytest.raises(NotFoundError, match="no version v9 .*v1 to v3"):
        registry.set_alias("churn@v9", "champion")
    with pytest.raises(NotFoundError, match="Model 'churm' does not exist. Did you mean 'churn'"):
        registry.set_alias("churm@v1", "champion")
    with pytest.raises(ModelInputError, match="reason"):
        registry.set_alias("churn@v1", "champion", reason="x" * 5000)


def test_rollback_walks_back_through_history(three_versions: ModelRegistry) -> None:
    registry = three_versions
    for number in (1, 2, 3):
        registry.set_alias(f"churn@v{number}", "champion", reason=f"ship v{number}")
    serial = registry.serial("churn")
    move = registry.rollback("churn@champion", reason="v3 misbehaves", actor="ops")
    assert (move.from_version, move.to_version, move.kind) == (3, 2, "rollback")
    assert registry.serial("churn") == serial + 1
    assert registry.rollback("churn@champion").to_version == 1
    with pytest.raises(NotFoundError, match="no earlier version"):
        registry.rollback("churn@champion")
    assert registry.get("churn@champion").number == 1
    history = registry.alias_history("churn", "champion")
    assert [(m.kind, m.from_version, m.to_version) for m in history] == [
        ("rollback", 2, 1),
        ("rollback", 3, 2),
        ("set", 2, 3),
        ("set", 1, 2),
        ("set", None, 1),
    ]
    assert history[-1].reason == "ship v1" and history[0].actor != ""
    # Moving forward again after rollbacks, then rolling back, returns to v1.
    registry.set_alias("churn@v3", "champion")
    assert registry.rollback("churn@champion").to_version == 1
    with pytest.raises(ModelInputError, match="NAME@ALIAS"):
        registry.rollback("churn@v2")
    with pytest.raises(NotFoundError, match="nothing to roll back"):
        registry.rollback("churn@challenger")


def test_audit_log_covers_every_alias_and_removal(three_versions: ModelRegistry) -> None:
    registry = three_versions
    registry.set_alias("churn@v1", "champion", actor="ana", reason="first")
    registry.set_alias("churn@v2", "challenger", actor="bo", reason="try")
    removal = registry.remove_alias("churn", "challenger", reason="done")
    assert (removal.kind, removal.to_version) == ("remove", None)
    log = registry.audit_log("churn")
    assert [(m.alias, m.kind) for m in log] == [
        ("challenger", "remove"),
        ("challenger", "set"),
        ("champion", "set"),
    ]
    with pytest.raises(NotFoundError, match="no alias 'challenger'"):
        registry.get("churn@challenger")
    with pytest.raises(NotFoundError):
        registry.remove_alias("churn", "challenger")
    with pytest.raises(NotFoundError, match="does not exist"):
        registry.audit_log("unknown")


def test_canary_shadow_and_serial(three_versions: ModelRegistry) -> None:
    registry = three_versions
    registry.set_alias("churn@v1", "champion")
    config = registry.alias_config("churn", "champion")
    assert (config.version, config.canary, config.shadow) == (1, None, None)
    before = config.serial
    config = registry.set_canary("churn", "champion", version=2, share=0.1, sticky_by="request")
    assert config.canary is not None and (config.canary.version, config.canary.share) == (2, 0.1)
    assert config.canary.sticky_by == "request" and config.serial == before + 1
    config = registry.set_shadow("churn", "champion", version=3)
    assert config.shadow == 3 and config.serial == before + 2
    assert registry.serial("churn") == config.serial
    # Promoting the canary's version ends the canary; the shadow stays.
    registry.set_alias("churn@v2", "champion")
    config = registry.alias_config("churn", "champion")
    assert (config.version, config.canary, config.shadow) == (2, None, 3)
    assert registry.clear_shadow("churn", "champion").shadow is None
    for bad_share in (0, 1, 1.5, -0.1, float("nan"), "0.1", True):
        with pytest.raises(ModelInputError, match="share"):
            registry.set_canary("churn", "champion", version=1, share=bad_share)  # type: ignore[arg-type]
    with pytest.raises(ModelInputError, match="another version"):
        registry.set_canary("churn", "champion", version=2, share=0.2)
    with pytest.raises(NotFoundError, match="no version v7"):
        registry.set_shadow("churn", "champion", version=7)
    with pytest.raises(ModelInputError, match="sticky_by"):
        registry.set_canary("churn", "champion", version=1, share=0.2, sticky_by="user")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="no alias 'canary'"):
        registry.set_canary("churn", "canary", version=1, share=0.2)
    with pytest.raises(NotFoundError):
        registry.serial("unknown")
    assert registry.clear_canary("churn", "champion").canary is None


def test_evaluations_are_stored_per_version(three_versions: ModelRegistry) -> None:
    registry = three_versions
    assert registry.evaluations("churn@v1") == []
    assert registry.latest_evaluation("churn@v1") is None
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0L1 1"/></svg>'
    first = registry.record_evaluation(
        "churn@v1",
        dataset="churn@v1",
        metrics={"roc_auc": 0.83, "recall": 0.61},
        gate_results=(PASSED, SKIPPED),
        threshold=0.42,
        plots={"roc": svg},
        detail={"slices": {"gender": {"F": 0.6, "M": 0.62}}},
        actor="eval-bot",
    )
    assert first.passed and first.threshold == 0.42 and first.created_by == "eval-bot"
    assert first.plots == {"roc": svg} and first.plot_blobs["roc"].startswith("sha256:")
    second = registry.record_evaluation(
        "churn@v1", metrics={"roc_auc": 0.5}, gate_results=(FAILED,)
    )
    stored = registry.evaluations("churn@v1")
    assert [e.id for e in stored] == [second.id, first.id]
    assert not stored[0].passed and stored[0].failed_gates == (FAILED,)
    assert stored[1].detail == {"slices": {"gender": {"F": 0.6, "M": 0.62}}}
    assert registry.get("churn@v1").threshold == 0.42  # the newest threshold given
    assert registry.evaluations("churn@v2") == []
    for kwargs, pattern in (
        ({"metrics": [1]}, "metrics must be a mapping"),
        ({"metrics": {"auc": object()}}, "cannot be stored as JSON"),
        ({"metrics": {}, "threshold": 1.5}, "threshold"),
        ({"metrics": {}, "threshold": "0.5"}, "threshold"),
        ({"metrics": {}, "plots": {"roc": 12}}, "SVG text"),
        ({"metrics": {}, "plots": {"roc": "x" * (9 << 20)}}, "bytes; at most"),
        ({"metrics": {}, "gate_results": [None]}, "GateResult"),
        ({"metrics": {}, "dataset": "x" * 300}, "1-200 characters"),
        ({"metrics": {}, "dataset": 7}, "1-200 characters"),
    ):
        with pytest.raises((ModelInputError, ReferenceError_), match=pattern):
            registry.record_evaluation("churn@v2", **kwargs)
    assert registry.evaluations("churn@v2") == []
    with pytest.raises(NotFoundError):
        registry.record_evaluation("churn@v8", metrics={})


def test_versions_are_immutable_records(three_versions: ModelRegistry) -> None:
    import dataclasses

    version = three_versions.get("churn@v1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.number = 5  # type: ignore[misc]
    assert [spec.name for spec in version.signature.inputs] == NUMERIC
