"""``shipyard run``, ``shipyard pipelines ...`` and ``shipyard scheduler`` as a user meets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from shipyard.cli.main import main
from tests.pipelines.conftest import Project

PIPELINES = """
    from pathlib import Path

    from shipyard.pipelines import pipeline, step

    STATE = Path(__file__).parent / "state"


    @step
    def numbers(n: int = 3) -> list[int]:
        return list(range(n))


    @step
    def total(values: list[int], scale: float = 1.0) -> float:
        if (STATE / "broken").exists():
            raise ValueError("scale too large")
        return sum(values) * scale


    @pipeline
    def sums(n: int = 3, scale: float = 1.0) -> dict:
        \"\"\"Add some numbers up.\"\"\"
        return {"total": total(numbers(n), scale=scale)}
"""


def cli(capsys: pytest.CaptureFixture[str], project: Project, *args: str) -> tuple[int, str, str]:
    code = main(["-C", str(project.root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_of(text: str) -> Any:
    return json.loads(text)


def test_run_list_show_history_rerun(capsys: pytest.CaptureFixture[str], project: Project) -> None:
    project.write("pipelines.py", PIPELINES)
    code, out, err = cli(capsys, project, "pipelines", "list", "--json")
    assert code == 0, err
    [listed] = json_of(out)
    assert listed["name"] == "sums" and listed["description"] == "Add some numbers up."
    assert listed["params"]["scale"] == {"type": "float", "default": 1.0, "required": False}

    code, out, err = cli(capsys, project, "pipelines", "show", "sums", "--json", "-p", "n=2")
    assert code == 0, err
    assert [s["step"] for s in json_of(out)["steps"]] == ["numbers", "total"]
    assert json_of(out)["steps"][1]["upstream"] == ["numbers"]

    code, out, err = cli(
        capsys, project, "run", "sums", "-p", "n=5", "--param", "scale=0.5", "--json"
    )
    assert code == 0, err
    run = json_of(out)
    assert run["status"] == "finished" and run["params"] == {"n": 5, "scale": 0.5}
    assert "step total: finished" in err  # plain progress lines when not on a terminal

    code, out, err = cli(capsys, project, "run", "sums", "-p", "n=5", "--param", "scale=0.5")
    assert code == 0, err
    assert "2 cached" in out

    code, out, err = cli(capsys, project, "pipelines", "history", "--json")
    assert code == 0, err
    assert [r["pipeline"] for r in json_of(out)] == ["sums", "sums"]

    code, out, err = cli(capsys, project, "pipelines", "show", run["run_id"])
    assert code == 0, err
    assert f"run {run['run_id']} of sums: finished" in out
    assert "n=5" in out and "total" in out

    total = next(s for s in run["steps"] if s["step"] == "total")["outputs"]["output"]
    code, out, err = cli(capsys, project, "pipelines", "lineage", total)
    assert code == 0, err
    assert "step total (pipelines:total)" in out and "values: json" in out
    assert "step numbers (pipelines:numbers)" in out and "n=5" in out
    code, out, err = cli(capsys, project, "pipelines", "lineage", total, "--json")
    assert json_of(out)["inputs"]["values"]["step"] == "numbers"
    code, _, err = cli(capsys, project, "pipelines", "lineage", "sha256:" + "0" * 64)
    assert code == 1 and "No pipeline step produced output" in err

    code, out, err = cli(capsys, project, "pipelines", "rerun", run["run_id"][:10])
    assert code == 0, err
    assert "2 finished" in out and f"outputs: identical to run {run['run_id']}" in out


def test_a_failed_run_is_resumed_from_the_cli(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    project.write("pipelines.py", PIPELINES)
    (project.root / "state").mkdir()
    (project.root / "state" / "broken").write_text("1")
    code, _, err = cli(capsys, project, "run", "sums")
    assert code == 1
    assert "step 'total' failed: ValueError: scale too large" in err
    run_id = err.split("shipyard pipelines resume ")[1].split()[0]

    code, out, err = cli(capsys, project, "pipelines", "show", run_id, "--json")
    assert json_of(out)["status"] == "failed"

    (project.root / "state" / "broken").unlink()
    code, out, err = cli(capsys, project, "pipelines", "resume", run_id)
    assert code == 0, err
    assert f"run {run_id}: finished (2 finished)" in out
    assert "step numbers: cached - reused from the earlier attempt" in err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["run", "sum"], ["No pipeline named 'sum'. Did you mean 'sums'?"]),
        (
            ["run", "sums", "-p", "n=three"],
            ["'n' of pipeline 'sums' is 'three'; expected an integer"],
        ),
        (["run", "sums", "-p", "m=3"], ["has no parameter 'm'", "n (int), scale (float)"]),
        (["run", "sums", "-p", "n"], ["not of the form NAME=VALUE"]),
        (["run", "nosuchmodule:sums"], ["no module named 'nosuchmodule'"]),
        (["run", "pipelines:STATE"], ["is not a pipeline", "PosixPath"]),
        (["pipelines", "show", "0123456789abcdef"], ["No pipeline run '0123456789abcdef'"]),
        (["pipelines", "resume", "nothex"], ["not a pipeline run id"]),
        (["run", "sums", "--executor", "threads"], ["'threads' is not one of"]),
    ],
)
def test_bad_input_gets_one_clear_line(
    capsys: pytest.CaptureFixture[str], project: Project, args: list[str], needles: list[str]
) -> None:
    project.write("pipelines.py", PIPELINES)
    code, _, err = cli(capsys, project, *args)
    assert code != 0
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_broken_project_code_and_malformed_cron_are_reported(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    project.write(
        "pipelines.py",
        PIPELINES.replace("@pipeline\n", '@pipeline(schedule="0 25 * * *")\n'),
    )
    code, _, err = cli(capsys, project, "scheduler", "--max-ticks", "1")
    assert code == 1
    assert "@pipeline 'sums' schedule '0 25 * * *': the hour field '25' has 25" in err
    code, _, err = cli(capsys, project, "pipelines", "list")
    assert code == 1 and "hour field" in err

    project.write("pipelines.py", "def broken(:\n")
    code, _, err = cli(capsys, project, "run", "sums")
    assert code == 1 and "Importing the project's pipelines.py" in err and "SyntaxError" in err

    project.write("pipelines.py", "import no_such_dependency\n")
    code, _, err = cli(capsys, project, "pipelines", "list")
    assert code == 1 and "no_such_dependency" in err


def test_no_pipelines_and_no_schedules(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    code, out, _ = cli(capsys, project, "pipelines", "list")
    assert code == 0 and "No pipelines" in out
    code, out, _ = cli(capsys, project, "pipelines", "history")
    assert code == 0 and "No pipeline runs yet" in out
    project.write("pipelines.py", PIPELINES)
    code, _, err = cli(capsys, project, "scheduler", "--max-ticks", "1", "--tick", "0.01")
    assert code == 0
    assert "No schedules, triggers or policies" in err and "0 schedule(s)" in err


def test_the_scheduler_command_runs_until_sigterm(project: Project) -> None:
    project.write(
        "pipelines.py", PIPELINES.replace("@pipeline\n", '@pipeline(schedule="@hourly")\n')
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "shipyard.cli.main", "-C", str(project.root), "scheduler"],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first_line = process.stderr.readline()
    assert "started: 1 schedule(s)" in first_line
    assert "sums: '@hourly', next at" in process.stderr.readline()
    process.terminate()
    assert process.wait(timeout=30) == 0
