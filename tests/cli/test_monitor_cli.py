"""``shipyard monitor check|history|report|labels`` on a real churn project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from shipyard.cli.main import main
from tests.monitoring.loop_fixtures import make_project, read_churn, serve, shifted


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> Path:
    churn: pa.Table = read_churn(datasets_dir)
    root = tmp_path_factory.mktemp("monitor_cli") / "project"
    config = make_project(root, churn)
    serve(config, churn.slice(1500, 600), prefix="clean")
    return root


def _cli(project: Path, *args: str) -> int:
    return main(["-C", str(project), "monitor", *args])


def test_check_history_report_and_labels(
    project: Path, datasets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.core.config import load_config

    assert _cli(project, "check", "churn", "--window", "600", "--json") == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["alert"] is False and clean["rows"] == 600
    churn = read_churn(datasets_dir)
    serve(load_config(project, environ={}), shifted(churn.slice(2300, 600)), prefix="shifted")
    assert _cli(project, "check", "churn", "--window", "600") == 1
    out = capsys.readouterr().out
    assert "ALERT" in out and "number_customer_service_calls" in out
    labels = tmp_path / "labels.csv"
    truth = churn.slice(1500, 600).column("churn").to_pylist()
    labels.write_text("request_id,label\n" + "".join(f"clean-{i},{truth[i]}\n" for i in range(600)))
    assert _cli(project, "labels", str(labels)) == 0
    assert "Stored 600 label(s)" in capsys.readouterr().out
    assert _cli(project, "history", "churn", "--json") == 0
    history = json.loads(capsys.readouterr().out)["history"]
    kinds = [entry["kind"] for entry in history]
    assert kinds.count("check") == 2 and "alert" in kinds
    report, data = tmp_path / "r.html", tmp_path / "r.json"
    assert (
        _cli(
            project,
            "report",
            "churn",
            "--output",
            str(report),
            "--json-output",
            str(data),
            "--every",
            "1h",
        )
        == 0
    )
    page = report.read_text()
    assert page.count("<svg") >= 4 and "Drift over time" in page and "Performance over time" in page
    document = json.loads(data.read_text())
    assert len(document["checks"]) == 2
    assert document["performance"]["windows"][0]["labelled"] == 600
    assert _cli(project, "report", "churn", "--output", str(tmp_path)) == 1
    assert "is a folder" in capsys.readouterr().err


def test_bad_input_gives_one_clear_line(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, needle in (
        (("check", "ghost"), "'ghost' is not registered"),
        (("check", "churn", "--window", "0"), "count window"),
        (("check", "churn", "--window", "5", "--last", "1h"), "not both"),
        (("check", "churn", "--last", "soon"), "--last"),
        (("check", "churn", "--arm", "blue"), "arm"),
        (("check", "churn", "--last", "1s"), "needs at least 30"),
        (("report", "ghost"), "'ghost' is not registered"),
    ):
        assert _cli(project, *args) != 0, args
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert needle in captured.err, (args, captured.err)


def test_check_follows_the_alert_rules_and_channels_of_shipyard_toml(
    project: Path,
    datasets_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shipyard.core.config import load_config

    root = tmp_path / "configured"
    shutil.copytree(project, root)
    churn = read_churn(datasets_dir)
    serve(load_config(root, environ={}), shifted(churn.slice(2900, 600)), prefix="toml")
    toml = root / "shipyard.toml"
    base = toml.read_text()
    toml.write_text(
        base + "[alerts.rules]\n"
        'calls = { kind = "data_drift", subject = "number_customer_service_calls", '
        'severity = "critical" }\n'
        '[alerts.channels]\noncall = { type = "log", logger = "oncall" }\n'
    )
    with caplog.at_level("WARNING", logger="oncall"):
        assert _cli(root, "check", "churn", "--window", "600", "--json") == 1
    check = json.loads(capsys.readouterr().out)
    # Only the configured rule raises: the default rules would also flag the score.
    assert [(b["severity"], b["subject"]) for b in check["breaches"]] == [
        ("critical", "number_customer_service_calls")
    ]
    [sent] = [r for r in caplog.records if r.name == "oncall"]
    assert "number_customer_service_calls" in sent.getMessage()
    toml.write_text(base + '[alerts.rules]\ncalls = { kind = "data_drift", severity = "loud" }\n')
    assert _cli(root, "check", "churn") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "shipyard.toml [alerts.rules] calls: Alert rule 'calls': severity 'loud'" in err
