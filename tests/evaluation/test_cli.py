"""``shipyard models evaluate`` and ``shipyard models card`` as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.cli.main import main
from shipyard.core.config import Config


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tables fold long cells at the default 80 columns; the assertions read whole names.
    monkeypatch.setenv("COLUMNS", "200")


def run(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-C", str(config.project_dir), "models", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_with_config_gates_then_card(
    project: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        project,
        capsys,
        "evaluate",
        "churn@v1",
        "--data",
        "churn_holdout@v1",
        "--label",
        "churn",
        "--gates-from-config",
        "--slice-by",
        "international_plan",
    )
    assert code == 0, err
    for text in (
        "Metrics",
        "roc_auc",
        "By international_plan",
        "Gates",
        "recall_at_precision_0.5",
        "champion_roc_auc",
        "skipped",
        "latency_p99",
        "robustness",
        "PASSED: 5 gate(s)",
        "Recorded on churn@v1",
    ):
        assert text in out
    html = tmp_path / "card.html"
    code, _, err = run(project, capsys, "card", "churn@v1", "--output", str(html))
    assert code == 0 and "Wrote html card" in err
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4
    assert "Flags subscribers likely to cancel next month." in page
    code, _, _ = run(project, capsys, "card", "churn@v1", "-o", str(tmp_path / "card.md"))
    assert code == 0 and (tmp_path / "card.md").read_text().startswith("# Model card: churn@v1")
    code, out, _ = run(project, capsys, "card", "churn@v1", "-o", "-", "--format", "md")
    assert code == 0 and "## Gates" in out and "Overall: **passed**" in out


def test_failed_gate_exits_1_with_the_table_and_json(
    project: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        project,
        capsys,
        "evaluate",
        "churn_slow@v1",
        "--data",
        "churn_holdout@v1",
        "--label",
        "churn",
        "--gates-from-config",
        "--allow-pickle",
    )
    assert code == 1, err
    assert "latency_p99" in out and "failed" in out and "FAILED: latency_p99" in out
    code, out, _ = run(
        project,
        capsys,
        "evaluate",
        "churn_slow@v1",
        "--data",
        "churn_holdout@v1",
        "--label",
        "churn",
        "--gates-from-config",
        "--allow-pickle",
        "--json",
        "--no-record",
    )
    payload = json.loads(out)
    assert code == 1 and payload["passed"] is False and payload["recorded"] is False
    (gate,) = payload["gates"]
    assert gate["gate"] == "latency_p99" and gate["status"] == "failed" and gate["figure"] >= 50
    code, _, err = run(
        project,
        capsys,
        "evaluate",
        "churn_slow@v1",
        "--data",
        "churn_holdout@v1",
        "--label",
        "churn",
    )
    assert code == 1 and "allow_pickle" in err.replace("-", "_") and "Traceback" not in err


def test_time_split_from_the_command_line(
    project: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        project,
        capsys,
        "evaluate",
        "churn@v1",
        "--data",
        "churn_events",
        "--time-column",
        "event_time",
        "--holdout-fraction",
        "0.1",
        "--label",
        "churn",
        "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["rows"] == 100 and "newest 10%" in payload["data"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "churn@v1", "--data", "nope@v1", "--label", "churn"], "nope"),
        (
            ["evaluate", "churn@v1", "--data", "churn_holdout@v1", "--label", "chrun"],
            "Label column 'chrun' is not a column of churn_holdout@v1",
        ),
        (
            ["evaluate", "churn@v1", "--data", "churn_holdout@v1", "--label", "state"],
            "Label column 'state' holds",
        ),
        (
            [
                "evaluate",
                "churn@v1",
                "--data",
                "churn_holdout@v1",
                "--label",
                "churn",
                "--slice-by",
                "Gender",
            ],
            "column 'Gender' is not in the evaluation data",
        ),
        (
            [
                "evaluate",
                "churn@v1",
                "--data",
                "churn_holdout@v1",
                "--label",
                "churn",
                "--holdout-fraction",
                "0.2",
            ],
            "--holdout-fraction needs --time-column",
        ),
        (
            [
                "evaluate",
                "churn@v1",
                "--data",
                "churn_events",
                "--label",
                "churn",
                "--time-column",
                "event_time",
                "--holdout-fraction",
                "1.5",
            ],
            "between 0 and 1",
        ),
        (
            ["evaluate", "churn@@v1", "--data", "churn_holdout@v1", "--label", "churn"],
            "more than one '@'",
        ),
        (["evaluate", "ghost@v1", "--data", "churn_holdout@v1", "--label", "churn"], "ghost"),
        (["card", "churn@v9", "--output", "x.html"], "has no version v9"),
        (["card", "churn@v1", "--output", "/nonexistent-folder/card.html"], "does not exist"),
    ],
)
def test_bad_input_gives_one_clear_error(
    project: Config, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(project, capsys, *args)
    assert code != 0 and message in err, err
    assert "Traceback" not in err and "internal error" not in err


def test_gate_config_typo_is_named(project: Config, capsys: pytest.CaptureFixture[str]) -> None:
    toml = project.project_dir / "shipyard.toml"
    toml.write_text(toml.read_text().replace("p99_ms = 5000", "p99ms = 5000"))
    code, _, err = run(
        project,
        capsys,
        "evaluate",
        "churn@v1",
        "--data",
        "churn_holdout@v1",
        "--label",
        "churn",
        "--gates-from-config",
    )
    assert code == 1
    assert "[gates.churn] latency: unknown key 'p99ms'" in err and "Did you mean 'p99_ms'" in err
    toml.write_text(toml.read_text().replace("p99ms = 5000", 'p99_ms = "fast"'))
    code, _, err = run(
        project,
        capsys,
        "evaluate",
        "churn@v1",
        "--data",
        "churn_holdout@v1",
        "--label",
        "churn",
        "--gates-from-config",
    )
    assert code == 1 and "p99_ms must be a finite number, not 'fast'" in err


def test_empty_evaluation_set(project: Config, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa

    from shipyard.data.client import DatasetClient

    table = pa.table({"state": pa.array(["KS"]), "churn": pa.nulls(1, pa.string())})
    with DatasetClient.open(project) as client:
        client.ingest("unlabelled", table)
    code, _, err = run(
        project, capsys, "evaluate", "churn@v1", "--data", "unlabelled@v1", "--label", "churn"
    )
    assert code == 1 and "evaluation set from unlabelled@v1 is empty" in err
