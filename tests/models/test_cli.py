"""``shipyard models`` end to end on the churn data: register from a run, promote behind
gates, override, roll back; JSON output; one-line errors and exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shipyard.cli.main import main
from shipyard.core.config import Config
from shipyard.models import GateResult
from shipyard.models.registry import ModelRegistry
from tests.models.conftest import FEATURES, ChurnProject


def run(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-C", str(config.project_dir), "models", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_register_promote_rollback_journey(
    project: Config,
    churn_template: ChurnProject,
    fitted_pipeline: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(project, capsys, "list")
    assert code == 0 and "No models yet" in out

    code, out, err = run(project, capsys, "register", "churn", "--run", churn_template.run_id[:8])
    assert code == 0, err
    assert "Registered churn@v1" in out and "binary_classification" in out

    code, out, err = run(
        project,
        capsys,
        "register",
        "churn",
        "--run",
        churn_template.run_id,
        "--training-data",
        churn_template.dataset_ref,
        "--feature-service",
        "churn_features@v1",
        "--tag",
        "team=retention",
        "--description",
        "with features",
        "--json",
    )
    assert code == 0, err
    second = json.loads(out)
    assert second["reference"] == "churn@v2" and second["tags"] == {"team": "retention"}
    assert second["signature"]["feature_service"] == "churn_features@v1"
    assert second["dataset_versions"] == [churn_template.dataset_ref]

    code, out, err = run(project, capsys, "promote", "churn@v1", "champion")
    assert code == 1 and "error[" in err and "shipyard models evaluate" in err
    assert "Traceback" not in err

    gate = GateResult("recall_at_precision_0.8", "metric", 0.7, ">= 0.60", "passed")
    failed = GateResult("recall_gap_gender", "fairness", 0.2, "<= 0.10", "failed")
    with ModelRegistry.open(project) as registry:
        registry.record_evaluation("churn@v1", metrics={"roc_auc": 0.8}, gate_results=(gate,))
        registry.record_evaluation(
            "churn@v2", metrics={"roc_auc": 0.82}, gate_results=(gate, failed), threshold=0.35
        )

    code, out, err = run(project, capsys, "promote", "churn@v1", "champion", "--reason", "first")
    assert code == 0, err
    assert "churn@champion: - -> v1." in out

    code, out, err = run(project, capsys, "promote", "churn@v2", "champion")
    assert code == 1 and "recall_gap_gender = 0.2 (needs <= 0.10)" in err

    code, out, err = run(
        project, capsys, "promote", "churn@v2", "champion", "--override-reason", "", "--json"
    )
    assert code == 1 and "explicit reason" in err

    code, out, err = run(
        project,
        capsys,
        "promote",
        "churn@v2",
        "champion",
        "--override-reason",
        "PM accepted the gap for two weeks",
        "--json",
    )
    assert code == 0, err
    move = json.loads(out)
    assert move["override"] is True and move["from_version"] == 1 and move["to_version"] == 2
    assert [g["status"] for g in move["gate_results"]] == ["passed", "failed"]

    code, out, err = run(project, capsys, "show", "churn@champion")
    assert code == 0, err
    for text in ("churn@v2", "GATES FAILED", "recall_gap_gender", "OVERRIDE", "threshold", "0.35"):
        assert text in out, text

    code, out, err = run(project, capsys, "show", "churn@v2", "--json")
    shown = json.loads(out)
    assert shown["aliases"] == ["champion"] and shown["threshold"] == 0.35
    assert shown["evaluation"]["passed"] is False
    assert [i["name"] for i in shown["signature"]["inputs"]] == FEATURES
    assert [m["to_version"] for m in shown["alias_moves"]] == [2]

    code, out, err = run(project, capsys, "rollback", "churn@champion", "--reason", "gap too big")
    assert code == 0, err
    assert "rolled back v2 -> v1" in out

    code, out, err = run(project, capsys, "list", "--json")
    assert json.loads(out) == [
        {"name": "churn", "versions": 2, "latest": 2, "aliases": ["champion=v1"]}
    ]
    code, out, err = run(project, capsys, "list", "churn", "--json")
    assert [v["version"] for v in json.loads(out)] == [2, 1]
    code, out, err = run(project, capsys, "list", "churn")
    assert code == 0 and "champion" in out

    with ModelRegistry.open(project) as registry:
        moves = registry.audit_log("churn")
        assert [(m.kind, m.to_version, m.override) for m in moves] == [
            ("rollback", 1, False),
            ("set", 2, True),
            ("set", 1, False),
        ]
        answer = registry.load("churn@champion").predict(
            churn_template.frame[FEATURES].head(3).to_dict("records")
        )
        assert len(answer.labels) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nope@v1"), "Model 'nope' does not exist"),
        (("show", "bad@@ref"), "more than one '@'"),
        (("promote", "churn@v1", "v7"), "reads as a version number"),
        (("rollback", "churn@v1"), "NAME@ALIAS"),
        (("rollback", "churn@champion"), "nothing to roll back"),
        (("register", "churn", "--run", "zz"), "Run id"),
        (("register", "churn", "--run", "0" * 32), "does not exist"),
        (("register", "churn", "--run", "RUN", "--tag", "novalue"), "KEY=VALUE"),
        (("register", "bad name", "--run", "0" * 32), "Invalid model name"),
    ],
)
def test_cli_errors_are_one_clear_line(
    project: Config,
    churn_template: ChurnProject,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    with ModelRegistry.open(project) as registry:
        registry.register("churn", run_id=churn_template.run_id)
    code, out, err = run(project, capsys, *args)
    assert code != 0
    assert message in err, err
    assert "Traceback" not in err and "internal error" not in err


def test_register_needs_run_option(project: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(project, capsys, "register", "churn")
    assert code == 2 and "--run" in err


def test_evaluate_and_card_are_listed_lazily(
    project: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(project, capsys, "--help")
    assert code == 0
    for command in ("register", "list", "show", "promote", "rollback", "evaluate", "card"):
        assert command in out
