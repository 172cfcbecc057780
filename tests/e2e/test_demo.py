"""``shipyard demo`` end to end: the whole story on real tables (sizes shrunk, no step
skipped), checked against the stores it leaves behind; and its bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipyard.cli.main import main


def _story(project: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((project / "report" / "story.json").read_text())["facts"]
    return facts


def _gates_of_episode(run: Any) -> list[dict[str, Any]]:
    evaluated = next(e for e in run.events if e["step"] == "evaluated")
    gates: list[dict[str, Any]] = evaluated["figures"]["gates"]
    return gates


def _check_the_stores(project: Path, model: str, facts: dict[str, Any]) -> None:
    """What the story says must be what the stores hold."""
    from sqlalchemy import func, select

    from shipyard.core.config import load_config
    from shipyard.models.registry import ModelRegistry
    from shipyard.monitoring.alerts import AlertManager
    from shipyard.monitoring.monitor import check_history
    from shipyard.pipelines.closed_loop import loop_history
    from shipyard.store.schema.monitoring import prediction_labels, prediction_log

    config = load_config(project, environ={})
    with ModelRegistry.open(config) as registry:
        metadata = registry.stores.metadata
        # Gates evaluated and recorded on every candidate.
        for candidate in facts["evaluated"]:
            [stored] = registry.evaluations(candidate["version"])
            kinds = {r.gate.split("_")[0] for r in stored.gate_results}
            assert {"recall", "roc", "latency", "fairness"} <= kinds, kinds
            assert stored.passed == candidate["passed"]
        # The champion's move is audited, as an override exactly when no candidate passed.
        first = registry.alias_history(model, "champion")[-1]
        assert first.to_version == int(facts["champion_v1"].rsplit("@v", 1)[1])
        assert first.override == (not any(c["passed"] for c in facts["evaluated"]))
        # The shifted columns drifted in the new batch, not in the known customers'
        # traffic (whose features came from the online store); the drift alert fired.
        checks = {c["id"]: c for c in check_history(metadata, model=model)}
        assert not set(checks[facts["baseline"]["check"]]["drifted"]) & set(facts["shifted"])
        assert checks[facts["drift_check"]]["alert"] is True
        drifted = set(checks[facts["drift_check"]]["drifted"])
        assert set(facts["drifted"]) == drifted and drifted & set(facts["shifted"])
        alerts = AlertManager(metadata, []).alerts(model=model, limit=100)
        assert any(a.kind == "data_drift" for a in alerts)
        # The challenger's fate follows its gate results.
        [run] = loop_history(registry, model=model)
        gates = _gates_of_episode(run)
        failed = [g["gate"] for g in gates if g["status"] == "failed"]
        champion = registry.get(f"{model}@champion")
        if failed:
            assert run.outcome == "rejected", failed
            assert champion.reference == facts["champion_v1"]
        else:
            assert run.outcome == "promoted"
            assert champion.number == run.challenger_version
        assert facts["final_champion"] == champion.reference
        assert set(facts["served_after"]) == {str(champion.number)}
        assert registry.get(f"{model}@v{run.challenger_version}").dataset_versions == (
            facts["train_v2"],
        )
        # Predictions logged (every answered request), labels attached to them.
        with metadata.connect() as conn:
            logged = conn.execute(
                select(func.count())
                .select_from(prediction_log)
                .where(prediction_log.c.model == model)
            ).scalar_one()
            labelled = conn.execute(
                select(func.count()).select_from(prediction_labels)
            ).scalar_one()
            looked_up = conn.execute(
                select(prediction_log.c.features).where(prediction_log.c.request_id.like("known-%"))
            ).first()
    baseline, batch = facts["baseline"], facts["batch"]
    assert baseline["ok"] == baseline["sent"] and not baseline["errors"]
    assert batch["ok"] == batch["sent"] and not batch["errors"]
    served = baseline["records"] + batch["records"]
    assert logged == served + sum(facts["served_after"].values())
    assert labelled == served
    # Known customers were scored from the online store (request: the id only).
    assert looked_up is not None and all(
        entry["status"] == "present" for entry in looked_up[0].values()
    )


def test_the_churn_story_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "demo"
    code = main(
        [
            "demo",
            str(project),
            "--rows",
            "1200",
            "--traffic",
            "60",
            "--candidates",
            "logistic,gbm",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    facts = _story(project)
    # Quarantined rows counted: the 12 the demo corrupted, and those rows only.
    assert facts["quarantined"] == 12 == len(facts["corrupted_ids"])
    import pyarrow.parquet as pq

    quarantined = pq.read_table(project / "data" / "customers.quarantine.parquet")
    assert quarantined.num_rows == 12
    assert "12 quarantined" in out.out
    _check_the_stores(project, "churn", facts)
    # The narration shows every step; the report links the subsystems' pages.
    for word in ("quarantined", "champion", "ALERT", "Challenger", "shipyard -C"):
        assert word in out.out
    index = (project / "report" / "index.html").read_text()
    assert "drift.html" in index and "monitor.html" in index and "card_churn_v1.html" in index
    assert "<svg" in (project / "report" / "drift.html").read_text()
    # The project is left for the CLI.
    assert main(["-C", str(project), "models", "list"]) == 0
    assert main(["-C", str(project), "monitor", "history"]) == 0
    assert "churn" in capsys.readouterr().out


def test_another_table_runs_the_same_story(
    tmp_path: Path, datasets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "attrition"
    code = main(
        [
            "demo",
            str(project),
            "--data",
            str(datasets_dir / "attrition.csv"),
            "--target",
            "Attrition",
            "--entity",
            "employee",
            "--rows",
            "1000",
            "--traffic",
            "40",
            "--candidates",
            "logistic",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    facts = _story(project)
    assert "for Attrition='Yes'" in out.out
    roles = facts["roles"]
    assert (roles["target"], roles["positive"], roles["id_column"]) == (
        "Attrition",
        "Yes",
        "employee_id",
    )
    assert "MonthlyIncome" in roles["numeric"] and "OverTime" in roles["categorical"]
    assert set(roles["shift"]) <= set(roles["numeric"]) and len(roles["shift"]) == 3
    assert facts["quarantined"] == 12
    assert facts["service"] == "attrition_features@v1"
    _check_the_stores(project, "attrition", facts)


def test_column_roles_are_inferred_and_overridable(datasets_dir: Path) -> None:
    from shipyard.cli.demo_data import infer_roles, prepare, read_table

    frame = read_table(datasets_dir / "attrition.csv")
    inferred = infer_roles(frame, "Attrition")
    assert inferred.positive == "Yes" and inferred.id_added and inferred.time_added
    assert "JobLevel" in inferred.numeric and "Gender" in inferred.categorical
    chosen = infer_roles(
        frame,
        "Attrition",
        positive="No",
        categorical=["JobLevel"],
        shift=["Age", "DailyRate"],
        fairness_by="Gender",
        drop=["EmployeeCount"] if "EmployeeCount" in frame.columns else [],
    )
    assert chosen.positive == "No" and chosen.negative == "Yes"
    assert "JobLevel" in chosen.categorical and "JobLevel" not in chosen.numeric
    assert chosen.shift == ("Age", "DailyRate") and chosen.fairness_by == "Gender"
    prepared = prepare(frame, chosen, rows=400)
    # The batch is the newest rows, shifted; the history holds 12 corrupted rows.
    assert len(prepared.history) + len(prepared.batch) == 400
    assert (prepared.batch["Age"] > prepared.batch_unshifted["Age"]).all()
    assert prepared.history["event_ts"].max() < prepared.batch["event_ts"].min()
    assert len(prepared.corruptions) == 12


def _bad(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    project = tmp_path / "bad"
    code = main(["demo", str(project), *args])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err and "internal error" not in err, err
    assert not project.exists(), "nothing may be left half-written"
    return err


def test_bad_input_is_refused_clearly(
    tmp_path: Path, datasets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attrition = str(datasets_dir / "attrition.csv")
    err = _bad(tmp_path, capsys, "--data", str(tmp_path / "nope.csv"), "--target", "y")
    assert "nope.csv does not exist" in err
    err = _bad(tmp_path, capsys, "--data", attrition, "--target", "Salary")
    assert "'Salary'" in err and "Attrition" in err
    err = _bad(tmp_path, capsys, "--data", attrition, "--target", "Department")
    assert "3 distinct values" in err and "binary" in err
    err = _bad(tmp_path, capsys, "--data", attrition, "--target", "Age")
    assert "distinct values" in err
    err = _bad(tmp_path, capsys, "--data", attrition)
    assert "--target" in err
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\xff\xfe\x00\x81" * 300)
    err = _bad(tmp_path, capsys, "--data", str(garbage), "--target", "y")
    assert "garbage.csv" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    err = _bad(tmp_path, capsys, "--data", str(empty), "--target", "y")
    assert "empty.csv is empty" in err
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('a,b,y\n1,2,yes\n"3,4\n')
    err = _bad(tmp_path, capsys, "--data", str(ragged), "--target", "y")
    assert "ragged.csv" in err
    small = tmp_path / "small.csv"
    small.write_text("x,y\n" + "".join(f"{i},{'yes' if i % 2 else 'no'}\n" for i in range(60)))
    err = _bad(tmp_path, capsys, "--data", str(small), "--target", "y")
    assert "at least" in err
    err = _bad(tmp_path, capsys, "--data", attrition, "--target", "Attrition", "--shift", "Nope")
    assert "'Nope'" in err
    err = _bad(
        tmp_path, capsys, "--data", attrition, "--target", "Attrition", "--positive", "Maybe"
    )
    assert "'Maybe'" in err
    err = _bad(tmp_path, capsys, "--candidates", "deep-learning")
    assert "--candidates" in err
    err = _bad(tmp_path, capsys, "--model", "bad name!")
    assert "--model" in err
    # A folder that is not a Shipyard project is never deleted.
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "thesis.txt").write_text("years of work")
    assert main(["demo", str(keep)]) != 0
    assert "not a Shipyard project" in capsys.readouterr().err
    assert (keep / "thesis.txt").read_text() == "years of work"
