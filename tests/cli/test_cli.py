"""The CLI as a user meets it: exit codes, one clear line for bad input, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard import __version__
from shipyard.cli.main import main

SHIPYARD = [sys.executable, "-m", "shipyard.cli.main"]


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the CLI as a separate process, as a user would."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    environment.update(env or {})
    result = subprocess.run(
        [*SHIPYARD, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def assert_clean_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and __version__ in out


def test_init_doctor_info_on_the_embedded_default(tmp_path: Path) -> None:
    code, out, err = run("init", str(tmp_path / "churn"))
    assert code == 0, err
    assert (tmp_path / "churn" / "shipyard.toml").is_file()
    assert (tmp_path / "churn" / ".shipyard" / "metadata.db").is_file()
    assert ".shipyard/" in (tmp_path / "churn" / ".gitignore").read_text()

    code, out, err = run("doctor", "--json", cwd=tmp_path / "churn")
    assert code == 0, err
    report = json.loads(out)
    assert report["healthy"] is True
    assert {c["backend"] for c in report["checks"]} == {"metadata", "artifacts"}
    assert report["configuration"]["store.metadata"]["from"] == "default"

    code, out, err = run("-C", str(tmp_path / "churn"), "doctor")
    assert code == 0, err
    assert "All backends OK" in out

    code, out, err = run("-C", str(tmp_path / "churn"), "store", "info", "--json")
    assert code == 0, err
    assert json.loads(out)["dialect"] == "sqlite"


def test_init_refuses_an_existing_project(tmp_path: Path) -> None:
    assert run("init", str(tmp_path))[0] == 0
    code, _, err = run("init", str(tmp_path))
    assert_clean_error(code, err, "already a Shipyard project")


def test_init_refuses_a_bad_name_and_a_file(tmp_path: Path) -> None:
    code, _, err = run("init", str(tmp_path / "p"), "--name", "../../etc")
    assert_clean_error(code, err, "Invalid project name")
    assert not (tmp_path / "p" / "shipyard.toml").exists()
    (tmp_path / "afile").write_text("x")
    code, _, err = run("init", str(tmp_path / "afile"))
    assert_clean_error(code, err, "is not a folder")


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ("[store\n", ["not valid TOML", "fix:"]),
        ('[store]\nmetadata = "oracle://x/y"\n', ["unknown database scheme 'oracle://'"]),
        ('[store]\nartifacts = "ftp://host/x"\n', ["unknown artifact store scheme 'ftp://'"]),
    ],
)
def test_doctor_on_bad_configuration(tmp_path: Path, toml: str, needles: list[str]) -> None:
    (tmp_path / "shipyard.toml").write_text(toml)
    code, _, err = run("doctor", cwd=tmp_path)
    assert_clean_error(code, err, "shipyard.toml" if "TOML" in needles[0] else "store.", *needles)
    assert len(err.strip().splitlines()) <= 2


def test_doctor_on_an_unreachable_database(tmp_path: Path) -> None:
    env = {"SHIPYARD_STORE_METADATA": "postgresql://nobody:s3cret@127.0.0.1:1/none"}
    code, out, err = run("doctor", cwd=tmp_path, env=env)
    assert code == 1
    assert "FAIL" in out and "127.0.0.1:1" in out
    assert "s3cret" not in out + err
    assert "Traceback" not in out + err


def test_doctor_on_a_read_only_artifact_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    env = {"SHIPYARD_STORE_ARTIFACTS": str(blocker / "artifacts")}
    code, out, err = run("doctor", "--json", cwd=tmp_path, env=env)
    assert code == 1, out + err
    checks = {c["backend"]: c for c in json.loads(out)["checks"]}
    assert checks["metadata"]["ok"] is True
    assert checks["artifacts"]["ok"] is False
    assert "not writable" in checks["artifacts"]["detail"]


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    code, _, err = run("frobnicate", cwd=tmp_path)
    assert code == 2 and "No such command" in err and "Traceback" not in err
    code, _, err = run("store", "gc", "--grace", "-5", cwd=tmp_path)
    assert code == 2 and "--grace" in err


def test_missing_project_folder(tmp_path: Path) -> None:
    code, _, err = run("-C", str(tmp_path / "nope"), "doctor")
    assert_clean_error(code, err, "does not exist")


def test_in_process_main_returns_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(tmp_path / "missing"), "store", "info"]) == 1
    assert "error[SY100]" in capsys.readouterr().err
    assert main(["--version"]) == 0


def test_demo_never_deletes_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    # The whole story runs in tests/e2e/test_demo.py; here, the command as a process.
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("years of work")
    code, _, err = run("demo", str(tmp_path / "precious"))
    assert_clean_error(code, err, "is not a Shipyard project")
    assert (tmp_path / "precious" / "thesis.tex").exists()
