"""Gates in shipyard.toml: parsed into the same gates as code; every mistake named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.core.config import Config
from shipyard.core.errors import ConfigError
from shipyard.evaluation.gate_config import gates_from_config, parse_gates
from shipyard.evaluation.gates import (
    ChampionGate,
    FairnessGate,
    LatencyGate,
    MetricGate,
    RobustnessGate,
    ThresholdGate,
)
from tests.evaluation.conftest import make_project

TOML = """
[project]
name = "gates"

[gates.churn]
metrics = { roc_auc = ">= 0.80", log_loss = "<=0.45" }
recall_at_precision = { precision = 0.8, min_recall = 0.6 }
champion = { metric = "roc_auc", max_drop = 0.01 }
latency = { p99_ms = 200, samples = 50 }
fairness = [
  { metric = "recall", by = "Gender", max_gap = 0.1 },
  { metric = "accuracy", by = "Age", max_gap = 0.2, bins = [30, 45], min_rows = 10 },
]
robustness = { probes = ["missing_values", "empty_batch"] }

[gates.other]
robustness = true
"""


def test_gates_from_shipyard_toml(tmp_path: Path, migrated_sqlite: Path) -> None:
    config = make_project(tmp_path / "p", migrated_sqlite, TOML)
    gates = gates_from_config(config, "churn")
    assert [type(g) for g in gates] == [
        MetricGate,
        MetricGate,
        ThresholdGate,
        ChampionGate,
        LatencyGate,
        FairnessGate,
        FairnessGate,
        RobustnessGate,
    ]
    roc, loss, at_precision, champion, latency, gender, age, robust = gates
    assert (roc.metric, roc.op, roc.value) == ("roc_auc", ">=", 0.8)
    assert (loss.metric, loss.op, loss.value) == ("log_loss", "<=", 0.45)
    assert at_precision == ThresholdGate("recall_at_precision", 0.8, 0.6)
    assert champion.max_drop == 0.01 and latency.samples == 50 and latency.p99_ms == 200
    assert gender.by == "Gender" and age.bins == (30.0, 45.0) and age.min_rows == 10
    assert robust.probes == ("missing_values", "empty_batch")
    assert [type(g) for g in gates_from_config(config, "other")] == [RobustnessGate]
    with pytest.raises(ConfigError, match=r"no \[gates.nope\] table.*declared for: churn, other"):
        gates_from_config(config, "nope")


def test_no_gates_section(config: Config) -> None:
    with pytest.raises(
        ConfigError, match=r"no \[gates.churn\] table \(gates are declared for: none"
    ):
        gates_from_config(config, "churn")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"metric": {"recall": ">= 0.6"}}, r"\[gates.churn\]: unknown key 'metric'.*'metrics'"),
        ({"metrics": {"recal": ">= 0.6"}}, r"\[gates.churn\] metrics.recal: metric 'recal'"),
        ({"metrics": {"recall": 0.6}}, r"metrics.recall must be a string such as"),
        ({"metrics": {"recall": "at least 0.6"}}, r"metrics.recall must be a string"),
        ({"metrics": "recall >= 0.6"}, r"\[gates.churn\] metrics must be a table"),
        ({"latency": {"p99": 200}}, r"latency: unknown key 'p99'.*'p99_ms'"),
        ({"latency": {"p99_ms": "200ms"}}, r"latency: p99_ms must be a finite number"),
        ({"latency": {}}, r"latency: missing 'p99_ms'"),
        ({"latency": 200}, r"latency must be a table"),
        ({"recall_at_precision": {"precision": 0.8}}, r"missing 'min_recall'"),
        ({"recall_at_precision": {"precision": 80, "min_recall": 0.6}}, "between 0 and 1"),
        ({"champion": {"metric": "roc_auc", "max_drop": "1%"}}, r"champion: max_drop must be"),
        ({"fairness": {"metric": "recall", "by": "Gender"}}, r"fairness: missing 'max_gap'"),
        ({"fairness": []}, r"fairness is an empty list"),
        (
            {"fairness": [{"metric": "recall", "by": "Gender", "max_gap": 0.1, "bin": [1]}]},
            r"fairness\[0\]: unknown key 'bin'.*'bins'",
        ),
        (
            {"fairness": {"metric": "recall", "by": "Age", "max_gap": 0.1, "bins": "30,45"}},
            "bins must be a non-empty list",
        ),
        ({"robustness": "yes"}, r"robustness must be a table"),
        ({"robustness": {"probes": ["nan"]}}, r"probe 'nan' is unknown"),
        (
            {
                "metrics": {"recall": ">= 0.5"},
                "recall_at_precision": {"precision": 0.5, "min_recall": 0.5},
                "precision_at_recall": {"recall": 0.5, "min_precision": 0.5},
            },
            None,
        ),
        ({"champion": [{"metric": "roc_auc"}, {"metric": "roc_auc"}]}, "declared twice"),
        ("not a table", r"\[gates.churn\] must be a table"),
    ],
)
def test_config_mistakes_name_the_key(table: Any, message: str | None) -> None:
    if message is None:
        assert len(parse_gates("churn", table)) == 3
        return
    with pytest.raises(ConfigError, match=message):
        parse_gates("churn", table)
