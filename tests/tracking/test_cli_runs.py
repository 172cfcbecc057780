"""``shipyard runs`` and ``shipyard experiments`` as a user meets them: tables, JSON, the
HTML comparison, and bad input answered with one clear line and exit code 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from shipyard.cli.main import main
from shipyard.core.config import load_config
from shipyard.store.metadata import open_metadata_store
from shipyard.tracking import queries
from tests.tracking.fixtures import PREFIX_TWINS, RunSpec, insert_runs, populate_sample


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    """A project folder whose store holds the sample runs; ``{name: id}``."""
    for name in list(os.environ):
        if name.startswith("SHIPYARD_") and name != "SHIPYARD_TEST_REQUIRE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "220")  # wide enough for every table column
    (tmp_path / "shipyard.toml").write_text('[project]\nname = "p"\n')
    with open_metadata_store(load_config(tmp_path).store.metadata) as store:
        with store.transaction() as conn:
            ids = populate_sample(conn)
            gbm_a = ids["gbm-a"]
            [tricky] = insert_runs(
                conn,
                ids["experiment:churn"],
                [
                    RunSpec(
                        "<script>alert(1)</script>[bold]",
                        params={"model": "gbm"},
                        metrics={"auc": [(0, 0.5), (1, 0.6)]},
                        parent_id=gbm_a,
                    )
                ],
            )
            ids["tricky"] = tricky
    return tmp_path, ids


def shipyard(capsys: pytest.CaptureFixture[str], folder: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process (fast) and return (exit code, stdout, stderr)."""
    code = main(["-C", str(folder), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_clear_error(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and "internal error" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error[SY") and len(lines) <= 2, err
    for needle in needles:
        assert needle in err, err


# --- runs list -----------------------------------------------------------------------------


def test_list_shows_active_runs_newest_first(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    code, out, err = shipyard(capsys, folder, "runs", "list", "-n", "100")
    assert code == 0, err
    header = out.splitlines()[0]
    for column in ("run", "name", "status", "start (UTC)", "duration", "metrics.auc"):
        assert column in header
    assert ids["gbm-a"][:8] in out and "deleted-1" not in out
    assert "experiment" in header  # runs of two experiments: which one each is in
    assert out.index("child-1") < out.index("gbm-a")  # newest first
    assert "[bold]" in out  # names are shown as written, never read as markup
    code, out, _ = shipyard(capsys, folder, "runs", "list", "--all", "-n", "100")
    assert "deleted-1 (deleted)" in out and "archived-1 (deleted)" in out


def test_list_filters_orders_and_pages(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    args = ["runs", "list", "-e", "churn", "-f", "params.model = 'gbm' and metrics.auc > 0.5"]
    args += ["-o", "metrics.auc DESC", "-n", "2"]
    code, out, err = shipyard(capsys, folder, *args)
    assert code == 0, err
    match = re.search(r"--page-token (\S+)", out)
    assert match, out
    first = [
        line.split()[0] for line in out.splitlines()[2:] if line and line[0] in "0123456789abcdef"
    ]
    assert len(first) == 2
    code, out, err = shipyard(capsys, folder, *args, "--page-token", match.group(1), "--json")
    assert code == 0, err
    page = json.loads(out)
    with open_metadata_store(load_config(folder).store.metadata) as store, store.connect() as conn:
        expected = queries.search_runs(
            conn,
            experiment_ids=[ids["experiment:churn"]],
            filter_string="params.model = 'gbm' and metrics.auc > 0.5",
            order_by=["metrics.auc DESC"],
            max_results=100,
        )
    names = [run.name for run in expected.runs]
    assert [run["name"] for run in page["runs"]] == names[2:4]
    assert [run["id"][:8] for run in page["runs"]] != first
    document = page["runs"][0]
    assert {"id", "params", "metrics", "tags", "inputs", "start_time", "experiment"} <= set(
        document
    )
    assert document["experiment"] == "churn"


def test_list_json_handles_nan_and_infinity(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = project
    code, out, err = shipyard(
        capsys,
        folder,
        "runs",
        "list",
        "-f",
        "params.model in ('rf', 'logreg')",
        "--json",
        "-n",
        "50",
    )
    assert code == 0, err
    metrics = {run["name"]: run["metrics"] for run in json.loads(out)["runs"]}
    assert metrics["logreg-b"]["auc"] == "nan" and metrics["rf-a"]["auc"] == "inf"


def test_list_with_no_match(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = project
    code, out, _ = shipyard(capsys, folder, "runs", "list", "-f", "params.model = 'none'")
    assert code == 0 and out.strip() == "No runs match."
    code, out, _ = shipyard(capsys, folder, "runs", "list", "-f", "params.model = 'none'", "--json")
    assert json.loads(out) == {"runs": [], "next_page_token": None}


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["-f", "metrics.auc >> 0.8"],
            ["SY720", "'>>' is not a comparison operator", "position 13"],
        ),
        (["-f", "params.lr > 0.1"], ["cannot compare params.lr", "fix:"]),
        (["-f", "(" * 300 + "x"], ["nests deeper than"]),
        (["-f", "params.x = '" + "y" * 200_000 + "'"], ["characters long"]),
        (["-o", "metrics.auc DOWN"], ["Unexpected word 'DOWN'"]),
        (["--page-token", "not-a-token"], ["SY721", "malformed"]),
        (["-e", "chrun"], ["Experiment 'chrun' does not exist", "Did you mean 'churn'"]),
    ],
)
def test_list_bad_input_is_one_clear_line(
    project: tuple[Path, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needles: list[str],
) -> None:
    folder, _ = project
    code, _, err = shipyard(capsys, folder, "runs", "list", *args)
    assert_one_clear_error(code, err, *needles)


def test_a_token_from_another_search_is_refused(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = project
    _, out, _ = shipyard(capsys, folder, "runs", "list", "-n", "1", "--json")
    token = json.loads(out)["next_page_token"]
    code, _, err = shipyard(
        capsys, folder, "runs", "list", "-n", "1", "-f", "status = 'failed'", "--page-token", token
    )
    assert_one_clear_error(code, err, "belongs to another search")


def test_usage_errors(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = project
    code, _, err = shipyard(capsys, folder, "runs", "list", "-n", "0")
    assert code == 2 and "--max" in err
    code, _, err = shipyard(capsys, folder, "runs", "show")
    assert code == 2 and "RUN_ID" in err


# --- runs show -----------------------------------------------------------------------------


def test_show_everything_about_a_run(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    code, out, err = shipyard(capsys, folder, "runs", "show", ids["gbm-a"][:7])
    assert code == 0, err
    for needle in (ids["gbm-a"], "gbm-a", "churn", "a1b2c3d (uncommitted changes)", "train.py",
                   "Params", "depth", "Metrics (latest)", "0.86", "Tags", "mlflow.runName",
                   "Inputs", "Artifacts", "none"):  # fmt: skip
        assert needle in out, needle
    code, out, err = shipyard(capsys, folder, "runs", "show", ids["gbm-c"], "--json")
    document = json.loads(out)
    assert document["error"] == "out of memory" and document["status"] == "failed"
    assert document["artifacts"] == [] and document["environment"] is None
    assert document["params"]["lr"] == "1e-3"


@pytest.mark.parametrize(
    ("reference", "needles"),
    [
        ("0" * 32, ["SY200", "does not exist", "shipyard runs list"]),
        ("abcdef", ["SY201", "matches several runs", PREFIX_TWINS[0]]),
        ("abc", ["too short"]),
        ("../../etc/passwd", ["not hexadecimal"]),
    ],
)
def test_show_bad_ids(
    project: tuple[Path, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    reference: str,
    needles: list[str],
) -> None:
    folder, _ = project
    code, _, err = shipyard(capsys, folder, "runs", "show", reference)
    assert_one_clear_error(code, err, *needles)


# --- runs compare --------------------------------------------------------------------------


def test_compare_in_the_terminal_and_as_json(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    code, out, err = shipyard(capsys, folder, "runs", "compare", ids["gbm-a"], ids["gbm-b"][:8])
    assert code == 0, err
    assert "gbm-a (" in out and "gbm-b (" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["params.model"] == ["│", "gbm", "│", "gbm"]
    assert rows["params.depth"] == ["│", "6", "│", "3"]
    assert "differ." in out
    code, out, err = shipyard(
        capsys, folder, "runs", "compare", ids["gbm-a"], ids["gbm-b"], "--json"
    )
    document = json.loads(out)
    assert document["params"]["model"]["differs"] is False
    assert document["params"]["depth"] == {
        "differs": True,
        "values": {ids["gbm-a"]: "6", ids["gbm-b"]: "3"},
    }
    assert document["metrics"]["auc"]["values"][ids["gbm-a"]] == 0.86


def test_compare_writes_one_self_contained_html_page(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    page = folder / "reports" / "compare.html"
    page.parent.mkdir()
    chosen = [ids["gbm-a"], ids["logreg-b"], ids["tricky"], ids["rf-b"]]
    code, out, err = shipyard(capsys, folder, "runs", "compare", *chosen, "--html", str(page))
    assert code == 0, err
    assert f"Wrote {page}" in out
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert '<tr class="differs"><th>model</th>' in html
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.DOTALL)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert captions == ["auc", "loss"] and len(svgs) == 2  # metrics with more than one point
    auc = ET.fromstring(svgs[0])  # noqa: S314 - our own output
    namespace = "{http://www.w3.org/2000/svg}"
    lines = auc.findall(f"{namespace}polyline")
    assert len(lines) == 2  # gbm-a and the tricky run have curves; logreg-b has one point
    assert not auc.findall(f"{namespace}circle")  # logreg-b's one point is NaN: not drawn
    for line in lines:
        points = [tuple(map(float, p.split(","))) for p in line.attrib["points"].split()]
        assert all(64 <= x <= 504 and 12 <= y <= 216 for x, y in points)


def test_compare_bad_input(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    code, _, err = shipyard(capsys, folder, "runs", "compare", ids["gbm-a"], "0" * 32)
    assert_one_clear_error(code, err, "0" * 32)
    blocker = folder / "afile"
    blocker.write_text("x")
    code, _, err = shipyard(
        capsys, folder, "runs", "compare", ids["gbm-a"], "--html", str(blocker / "c.html")
    )
    assert_one_clear_error(code, err, "Cannot write")
    code, _, err = shipyard(capsys, folder, "runs", "compare", *[ids["gbm-a"]] * 26)
    assert_one_clear_error(code, err, "give 1 to 25")


@pytest.mark.parametrize(
    "points",
    [
        [(0, 1.0)],
        [(0, 2.0), (1, 2.0), (2, 2.0)],
        [(0, -1e308), (1, 1e308), (2, float("nan")), (3, float("inf"))],
        [(step, 1e-12 * step) for step in range(5000)],
        [],
    ],
)
def test_metric_charts_are_well_formed_whatever_the_values(points: list[tuple[int, float]]) -> None:
    from shipyard.tracking.compare import MAX_POINTS, metric_chart_svg
    from shipyard.tracking.records import Metric

    history = [Metric("m", value, step, 0.0) for step, value in points]
    svg = ET.fromstring(metric_chart_svg("m <&>", [("a & <b>", "#000", history)]))  # noqa: S314
    namespace = "{http://www.w3.org/2000/svg}"
    drawn = [*svg.iter(f"{namespace}polyline"), *svg.iter(f"{namespace}circle")]
    finite = [value for _, value in points if value == value and abs(value) != float("inf")]
    assert len(drawn) == (1 if finite else 0)
    for line in svg.iter(f"{namespace}polyline"):
        coordinates = line.attrib["points"].split()
        assert 2 <= len(coordinates) <= MAX_POINTS
        assert "nan" not in line.attrib["points"] and "inf" not in line.attrib["points"]


# --- Changes through the tracking client -------------------------------------------------------


def test_delete_restore_and_purge(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    code, out, err = shipyard(capsys, folder, "runs", "delete", ids["gbm-a"][:8], ids["gbm-b"])
    assert code == 0, err
    assert f"Deleted run {ids['gbm-a']} (gbm-a)." in out
    _, listed, _ = shipyard(capsys, folder, "runs", "list", "-n", "100")
    assert "gbm-a" not in listed and "child-1" not in listed  # nested runs go with it
    code, out, err = shipyard(capsys, folder, "runs", "restore", ids["gbm-a"])
    assert code == 0 and "Restored run" in out, err
    _, listed, _ = shipyard(capsys, folder, "runs", "list", "-n", "100")
    assert "gbm-a" in listed and "child-1" in listed and "gbm-b" not in listed

    code, out, err = main_with_input(capsys, folder, "n\n", "runs", "purge")
    assert code != 0 and "Aborted" in err
    assert run_exists(folder, ids["gbm-b"])
    code, out, err = shipyard(capsys, folder, "runs", "purge", "--older-than", "3600", "--yes")
    assert code == 0 and run_exists(folder, ids["gbm-b"]), err  # deleted just now: kept
    code, out, err = shipyard(capsys, folder, "runs", "purge", "--yes")
    assert code == 0, err
    assert re.search(r"Purged [1-9]\d* record\(s\)", out)
    assert not run_exists(folder, ids["gbm-b"]) and run_exists(folder, ids["gbm-a"])


def test_changes_to_unknown_runs_fail_cleanly(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    for command in ("delete", "restore"):
        code, _, err = shipyard(capsys, folder, "runs", command, ids["gbm-a"], "f" * 32)
        assert_one_clear_error(code, err, "f" * 32)
    assert run_exists(folder, ids["gbm-a"])  # nothing changed: the ids are checked first
    with open_metadata_store(load_config(folder).store.metadata) as store, store.connect() as conn:
        assert queries.load_run(conn, ids["gbm-a"]).lifecycle == "active"
    code, _, err = shipyard(capsys, folder, "runs", "purge", "--older-than", "-1", "--yes")
    assert code == 2 and "--older-than" in err


def test_experiments(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ids = project
    code, out, err = shipyard(capsys, folder, "experiments", "list")
    assert code == 0, err
    assert "churn" in out and "fraud" in out and "archive" not in out
    code, out, _ = shipyard(capsys, folder, "experiments", "list", "--all", "--json")
    listed = {e["name"]: e for e in json.loads(out)}
    assert listed["archive"]["lifecycle"] == "deleted" and listed["fraud"]["runs"] == 2
    code, out, err = shipyard(
        capsys, folder, "experiments", "create", "pricing", "-d", "price tests", "--tag", "team=x"
    )
    assert code == 0 and "Created experiment pricing" in out, err
    code, _, err = shipyard(capsys, folder, "experiments", "create", "pricing")
    assert_one_clear_error(code, err, "already exists")
    code, _, err = shipyard(capsys, folder, "experiments", "create", "p2", "--tag", "novalue")
    assert code == 2 and "KEY=VALUE" in err
    code, out, err = shipyard(capsys, folder, "experiments", "delete", "fraud")
    assert code == 0 and "Deleted experiment fraud" in out, err
    _, listed_runs, _ = shipyard(capsys, folder, "runs", "list", "-n", "100")
    assert "fraud-1" not in listed_runs
    code, out, err = shipyard(capsys, folder, "experiments", "restore", ids["experiment:fraud"][:8])
    assert code == 0 and "Restored experiment fraud" in out, err
    _, listed_runs, _ = shipyard(capsys, folder, "runs", "list", "-n", "100")
    assert "fraud-1" in listed_runs
    code, _, err = shipyard(capsys, folder, "experiments", "delete", "nope")
    assert_one_clear_error(code, err, "Experiment 'nope' does not exist")


def test_empty_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = shipyard(capsys, tmp_path, "runs", "list")
    assert code == 0 and out.strip() == "No runs yet."
    code, out, _ = shipyard(capsys, tmp_path, "experiments", "list")
    assert code == 0 and out.strip() == "No experiments yet."


# --- As a separate process, and on PostgreSQL ----------------------------------------------------


def test_as_a_user_runs_it(project: tuple[Path, dict[str, str]]) -> None:
    folder, _ = project
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    command = [sys.executable, "-m", "shipyard.cli.main", "-C", str(folder)]
    result = subprocess.run(
        [*command, "runs", "list", "-f", "metrics.auc >> 0.8"],
        env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines()[0].startswith("error[SY720]: '>>' is not a comparison")
    assert "Traceback" not in result.stderr
    result = subprocess.run(
        [*command, "--help"], env=environment, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert "runs" in result.stdout and "experiments" in result.stdout


def test_list_on_postgres(
    postgres_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SHIPYARD_STORE_METADATA", postgres_uri)
    monkeypatch.setenv("COLUMNS", "220")
    with open_metadata_store(postgres_uri) as store, store.transaction() as conn:
        ids = populate_sample(conn)
    code, out, err = shipyard(
        capsys, tmp_path, "runs", "list", "-f", "params.model like 'g%'", "-o", "name", "--json"
    )
    assert code == 0, err
    names = [run["name"] for run in json.loads(out)["runs"]]
    assert names == sorted(names) and "gbm-a" in names and "rf-b" not in names  # 'Gbm'
    code, out, err = shipyard(capsys, tmp_path, "runs", "show", ids["child-1"][:6], "--json")
    assert json.loads(out)["parent_id"] == ids["gbm-a"]


# --- Helpers ---------------------------------------------------------------------------


def run_exists(folder: Path, run_id: str) -> bool:
    with open_metadata_store(load_config(folder).store.metadata) as store, store.connect() as conn:
        try:
            queries.load_run(conn, run_id)
        except Exception:  # noqa: BLE001 - NotFoundError: purged
            return False
        return True


def main_with_input(
    capsys: pytest.CaptureFixture[str], folder: Path, text: str, *args: str
) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from shipyard.cli.main import cli

    result = CliRunner().invoke(cli, ["-C", str(folder), *args], input=text)
    return result.exit_code or (1 if result.exception else 0), result.output, result.output
