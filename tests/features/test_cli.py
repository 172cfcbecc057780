"""``shipyard features`` as a user meets it: apply a file, list, show, materialize, get, skew."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.cli.main import main
from shipyard.core.config import Config
from tests.features import fixtures
from tests.features.fixtures import TS, at, events_table, make_project

# Fixtures shared by the feature tests (conftest.py belongs to the offline suite).
features_template, project = fixtures.features_template, fixtures.project

DEFINITIONS = """
from datetime import timedelta
import shipyard.features as sf

customer = sf.Entity("customer", join_keys=["customer_id"])
stats = sf.FeatureView(
    "customer_stats", entities=[customer], source="events", timestamp="event_ts",
    ttl=timedelta(days=36500),
    features=[sf.Feature("f0", "float64"), sf.Feature("f1", "int64")],
)

@sf.on_demand(inputs=["customer_stats:f0", "request:amount"], outputs=[sf.Feature("ratio")])
def ratio(frame):
    import pyarrow.compute as pc
    return {"ratio": pc.divide(frame["amount"], frame["f0"])}

churn = sf.FeatureService("churn", [stats, ratio])
"""


def run(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-C", str(config.project_dir), "features", *args])
    out, err = capsys.readouterr()
    return code, out, err


def define(project: Config) -> Config:
    from shipyard.data.client import DatasetClient

    with DatasetClient.open(project) as client:
        client.ingest("events", events_table())
    path = project.project_dir / "features_def.py"
    path.write_text(DEFINITIONS)
    assert main(["-C", str(project.project_dir), "features", "apply", str(path)]) == 0
    return project


@pytest.fixture
def defined(project: Config, capsys: pytest.CaptureFixture[str]) -> Config:
    configured = define(project)
    assert "applied service churn@v1" in capsys.readouterr().out
    return configured


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, features_template: Path) -> Config:
    """One applied project for the read-only error tests."""
    return define(make_project(tmp_path_factory.mktemp("cli"), features_template))


def test_apply_list_show(defined: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(defined, capsys, "apply", str(defined.project_dir / "features_def.py"))
    assert code == 0 and "0 new version(s)" in out
    code, out, _ = run(defined, capsys, "list", "--json")
    listed = json.loads(out)
    assert {(d["kind"], d["reference"]) for d in listed} == {
        ("entity", "customer@v1"),
        ("view", "customer_stats@v1"),
        ("on_demand", "ratio@v1"),
        ("service", "churn@v1"),
    }
    code, out, _ = run(defined, capsys, "list", "--kind", "view")
    assert code == 0 and "customer_stats" in out and "entity" not in out
    code, out, _ = run(defined, capsys, "show", "churn@v1", "--json")
    shown = json.loads(out)
    assert shown[0]["spec"]["views"] == {"customer_stats": 1}
    assert shown[0]["versions"] == ["churn@v1"]


def test_materialize_get_and_skew(
    defined: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(defined, capsys, "materialize", "--json")
    assert code == 0, err
    assert json.loads(out)["views"][0]["rows"] == 2
    code, out, err = run(
        defined,
        capsys,
        "get",
        "churn@v1",
        "-e",
        "customer_id=1",
        "-e",
        '{"customer_id": 9}',
        "-r",
        "amount=4",
        "--json",
    )
    assert code == 0, err
    rows = json.loads(out)
    assert rows[0]["f0"]["value"] == 2.0 and rows[0]["ratio"]["value"] == 2.0
    assert rows[1]["f0"]["status"] == "missing"
    code, out, _ = run(defined, capsys, "get", "churn@v1", "-e", "customer_id=1", "-r", "amount=4")
    assert code == 0 and "present" in out
    log = tmp_path / "served.parquet"
    pq.write_table(
        pa.table(
            {"customer_id": [1], "request_ts": pa.array([at(6)], TS), "f0": [9.0], "amount": [4.0]}
        ),
        log,
    )
    code, out, err = run(defined, capsys, "skew", str(log), "--service", "churn@v1", "--json")
    assert code == 0, err
    assert json.loads(out)["features"][0] == {
        "feature": "f0",
        "compared": 1,
        "mismatched": 1,
        "rate": 1.0,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("apply", "nope.py"), "Definitions file nope.py does not exist"),
        (("apply", "no_such_module_xyz"), "Cannot import definitions module"),
        (("show", "ghost"), "No definition named 'ghost'"),
        (("get", "churn@v1", "-e", "customer_id"), "is not KEY=VALUE"),
        (("get", "churn@v1", "-e", "{bad json"), "is not valid JSON"),
        (("get", "churn@v1", "-e", "customer_id=1", "--as-of", "soon"), "--as-of 'soon'"),
        (("get", "ghost@v1", "-e", "customer_id=1"), "No feature service 'ghost@v1'"),
        (("materialize", "--start", "2026-03-02", "--end", "2026-03-01"), "is after end"),
        (("skew", "missing.parquet", "--service", "churn"), "does not exist"),
        (("get", "churn@v1", "-e", "customer_id=x", "-r", "amount=1"), "expected an integer"),
    ],
)
def test_bad_input_is_one_clear_line(
    shared: Config, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    capsys.readouterr()
    code, _, err = run(shared, capsys, *args)
    assert code != 0
    assert message in err
    assert "Traceback" not in err


def test_a_broken_definitions_file_is_reported_without_traceback(
    project: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project.project_dir / "broken.py"
    path.write_text("import shipyard.features as sf\nsf.Entity('x', join_keys=[])\n")
    code, _, err = run(project, capsys, "apply", str(path))
    assert code != 0 and "Loading feature definitions from" in err and "no join keys" in err
    empty = project.project_dir / "empty.py"
    empty.write_text("x = 1\n")
    code, _, err = run(project, capsys, "apply", str(empty))
    assert code != 0 and "defines no entities" in err
