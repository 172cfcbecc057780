"""``[policies.NAME]`` and ``[alerts]`` in shipyard.toml: parsed, used by the scheduler,
and refused with the key named when wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shipyard.core.config import Config, load_config
from shipyard.core.errors import ConfigError
from shipyard.monitoring.alert_rules import AlertRule
from shipyard.monitoring.channels import WebhookChannel
from shipyard.pipelines.canary import Canary
from shipyard.pipelines.closed_loop import Policy
from shipyard.pipelines.policy import load_policies, policies_from_config
from shipyard.pipelines.scheduler import Scheduler

POLICY = """
[policies.churn_nightly]
model = "churn"
pipeline = "train_churn"
evaluation_data = "churn_holdout"
label = "churn"
on = "0 3 * * 1"
promote = "manual"
params = { rows = 500 }
window = "6h"

[policies.churn_drift]
model = "churn"
pipeline = "train_churn"
evaluation_data = "churn_holdout@v2"
label = "churn"
on = ["drift"]
check_every = "15m"
window = 800

[policies.churn_drift.canary]
share = 0.2
min_requests = 150
max_error_rate = 0.02
max_p99_ms = 40
max_wait = "6h"
"""

ALERTS = """
[alerts.rules]
calls = { kind = "data_drift", subject = "number_customer_service_calls", severity = "critical" }

[alerts.channels]
oncall = { type = "webhook", url = "https://hooks.example.com/shipyard", retries = 1 }
"""


def _project(tmp_path: Path, toml: str, pipelines: str | None = None) -> Config:
    root = tmp_path / "project"
    root.mkdir()
    (root / "shipyard.toml").write_text('[project]\nname = "loop"\n' + toml)
    if pipelines is not None:
        (root / "pipelines.py").write_text(pipelines)
    return load_config(root, environ={})


def test_policies_in_shipyard_toml_are_parsed_into_policies(tmp_path: Path) -> None:
    drift, nightly = policies_from_config(_project(tmp_path, POLICY))
    assert nightly == Policy(
        model="churn",
        pipeline="train_churn",
        evaluation_data="churn_holdout",
        label="churn",
        on="0 3 * * 1",
        promote="manual",
        params={"rows": 500},
        window=timedelta(hours=6),
        name="churn_nightly",
    )
    assert (drift.key, drift.alert_kinds, drift.check_every, drift.window) == (
        "churn_drift",
        ("data_drift", "dataset_drift", "prediction_drift"),
        timedelta(minutes=15),
        800,
    )
    assert drift.canary == Canary(
        share=0.2, min_requests=150, max_error_rate=0.02, max_p99_ms=40, max_wait=timedelta(hours=6)
    )


def test_the_scheduler_runs_the_configured_policies_with_the_configured_alerts(
    tmp_path: Path,
) -> None:
    config = _project(tmp_path, POLICY + ALERTS)
    scheduler = Scheduler(config, pipelines=[], log=lambda message: None)
    try:
        assert [p.key for p in scheduler.loop.policies] == ["churn_drift", "churn_nightly"]
        [rule] = scheduler.loop.rules or []
        assert rule == AlertRule(
            "calls",
            kind="data_drift",
            subject="number_customer_service_calls",
            severity="critical",
        )
        [channel] = scheduler.loop.channels or []
        assert isinstance(channel, WebhookChannel) and channel.retries == 1
    finally:
        scheduler.close()


def test_a_name_in_both_pipelines_py_and_shipyard_toml_is_refused(tmp_path: Path) -> None:
    pipelines = """
from shipyard.pipelines.closed_loop import Policy

churn = Policy(model="churn", pipeline="train_churn", evaluation_data="h", label="churn",
               name="churn_drift")
"""
    config = _project(tmp_path, POLICY, pipelines)
    with pytest.raises(
        ConfigError, match=r"'churn_drift' is defined twice.*\[policies.churn_drift\]"
    ):
        load_policies(config)


REQUIRED = 'model = "churn"\npipeline = "p"\nevaluation_data = "h"\nlabel = "y"\n'


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('model = "churn"\n', r"\[policies.bad\]: missing 'pipeline'"),
        (REQUIRED + "retrain = true\n", r"\[policies.bad\]: unknown key 'retrain'"),
        (REQUIRED + "model_name = 1\n", r"unknown key 'model_name'"),
        (REQUIRED + 'check_every = "often"\n', r"\[policies.bad\] check_every is 'often'"),
        (REQUIRED + 'check_every = "0s"\n', r"\[policies.bad\] check_every must be a positive"),
        (REQUIRED + "window = 0\n", r"\[policies.bad\] window must be a whole number >= 1"),
        (REQUIRED + 'on = ["weather"]\n', r"\[policies.bad\]: Policy\('churn'\): on="),
        (REQUIRED + "on = 3\n", r"\[policies.bad\] on must be a list"),
        (REQUIRED + 'gates = ["auc > 0.8"]\n', r"\[policies.bad\] gates is .*\[gates.MODEL\]"),
        (REQUIRED + 'promote = "sometimes"\n', r"\[policies.bad\]: .*promote is 'sometimes'"),
        (REQUIRED + "allow_pickle = 1\n", r"\[policies.bad\] allow_pickle must be true or false"),
        (REQUIRED + "params = 3\n", r"\[policies.bad\] params must be a table"),
        (REQUIRED + "canary = 0.1\n", r"\[policies.bad.canary\] must be a table"),
        (REQUIRED + "canary = { share = 1.5 }\n", r"\[policies.bad.canary\] share must be > 0"),
        (REQUIRED + "canary = { volume = 2 }\n", r"\[policies.bad.canary\]: unknown key 'volume'"),
        (
            REQUIRED + "canary = { min_requests = 2.5 }\n",
            r"\[policies.bad.canary\] min_requests must be a whole number",
        ),
        (
            REQUIRED + 'canary = { max_wait = "forever" }\n',
            r"\[policies.bad.canary\] max_wait is 'forever'",
        ),
        (
            REQUIRED + 'canary = { metric_vs_champion = "joy" }\n',
            r"\[policies.bad.canary\]: Canary.metric_vs_champion is 'joy'",
        ),
    ],
)
def test_bad_policy_tables_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    config = _project(tmp_path, "[policies.bad]\n" + table)
    with pytest.raises(ConfigError, match=message) as caught:
        policies_from_config(config)
    assert caught.value.message.startswith("shipyard.toml [policies.bad")


def test_a_bad_policy_table_stops_the_scheduler_before_it_starts(tmp_path: Path) -> None:
    config = _project(tmp_path, "[policies.bad]\n" + REQUIRED + 'check_every = "often"\n')
    with pytest.raises(ConfigError, match=r"\[policies.bad\] check_every"):
        Scheduler(config, pipelines=[])


def test_the_scheduler_command_reports_a_bad_policy_table_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.cli.main import main

    config = _project(tmp_path, "[policies.bad]\n" + REQUIRED + "canary = { share = 0 }\n")
    code = main(["-C", str(config.project_dir), "scheduler", "--max-ticks", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "shipyard.toml [policies.bad.canary] share must be > 0 and < 1, not 0." in err
