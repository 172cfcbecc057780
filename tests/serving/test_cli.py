"""`shipyard predict`, `build` and `monitor labels` on the churn project."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from shipyard.cli.main import main
from tests.serving.helpers import FEATURES, ChurnProject


def run(
    project: ChurnProject, *args: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = main(["-C", str(project.folder), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_predict_streams_parquet_and_csv_in_batches(
    churn_project: ChurnProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = pa.Table.from_pandas(churn_project.frame, preserve_index=False)
    source = tmp_path / "in.parquet"
    pq.write_table(table, source, row_group_size=100)
    target = tmp_path / "out.parquet"
    code, out, err = run(
        churn_project,
        "predict",
        "churn@champion",
        "--input",
        str(source),
        "--output",
        str(target),
        "--batch-rows",
        "128",
        "--json",
        capsys=capsys,
    )
    assert code == 0, err
    assert json.loads(out)["rows"] == len(table)
    scored = pq.read_table(target)
    assert scored.column_names == [*table.column_names, "score", "label"]
    from shipyard.models import ModelRegistry

    with ModelRegistry.open(churn_project.config) as registry:
        expected = registry.load("churn@champion").predict(table.select(FEATURES))
    assert scored.column("score").to_pylist() == pytest.approx(expected.scores.tolist())
    csv_in = tmp_path / "in.csv"
    pcsv.write_csv(table, csv_in)
    csv_out = tmp_path / "out.csv"
    code, _, err = run(
        churn_project,
        "predict",
        "churn@champion",
        "--input",
        str(csv_in),
        "--output",
        str(csv_out),
        capsys=capsys,
    )
    assert code == 0, err
    assert pcsv.read_csv(csv_out).column("score").to_pylist() == pytest.approx(
        expected.scores.tolist()
    )


def test_predict_names_the_bad_row_and_writes_nothing(
    churn_project: ChurnProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = churn_project.frame.copy()
    frame.loc[250, "international_plan"] = "perhaps"
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    target = tmp_path / "out.parquet"
    code, _, err = run(
        churn_project,
        "predict",
        "churn@champion",
        "--input",
        str(source),
        "--output",
        str(target),
        "--batch-rows",
        "100",
        capsys=capsys,
    )
    assert code == 1
    assert "row 251, column 'international_plan'" in err and "perhaps" in err
    assert not target.exists() and list(tmp_path.iterdir()) == [source]
    frame.loc[250, "international_plan"] = "no"
    frame["total_day_calls"] = frame["total_day_calls"].astype(object)
    frame.loc[10, "total_day_calls"] = "lots"
    frame.to_csv(source, index=False)
    code, _, err = run(
        churn_project,
        "predict",
        "churn@champion",
        "--input",
        str(source),
        "--output",
        str(target),
        capsys=capsys,
    )
    assert code == 1 and "row 11, column 'total_day_calls'" in err
    code, _, err = run(
        churn_project,
        "predict",
        "churn@champion",
        "--input",
        str(tmp_path / "none.csv"),
        "--output",
        str(target),
        capsys=capsys,
    )
    assert code == 1 and "does not exist" in err
    code, _, err = run(
        churn_project,
        "predict",
        "churn@nope",
        "--input",
        str(source),
        "--output",
        str(target),
        capsys=capsys,
    )
    assert code == 1 and "nope" in err


def test_build_writes_manifests_that_validate_strictly(
    churn_project: ChurnProject,
    shipyard_wheel: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kubernetes_validate

    folder = tmp_path / "build"
    code, out, err = run(
        churn_project,
        "build",
        "churn@champion",
        "--output",
        str(folder),
        "--json",
        "--wheel",
        str(shipyard_wheel),
        capsys=capsys,
    )
    assert code == 0, err
    report = json.loads(out)
    kinds = set()
    for name in ("configmap", "deployment", "service", "hpa"):
        document = json.loads((folder / "k8s" / f"{name}.yaml").read_text())
        kubernetes_validate.validate(document, "1.33", strict=True)
        kinds.add(document["kind"])
    assert kinds == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment = json.loads((folder / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    dockerfile = (folder / "Dockerfile").read_text()
    assert f"RUN {report['install']}" in dockerfile
    assert '"serve", "churn@champion", "--host", "0.0.0.0"' in dockerfile
    assert "scikit-learn==" in (folder / "requirements.txt").read_text()
    assert list((folder / "wheels").glob("shipyard-*.whl"))
    broken = dict(deployment)
    broken["spec"] = {**deployment["spec"], "replicaz": 3}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


@pytest.mark.slow
def test_dockerfile_install_step_works_in_a_fresh_venv(
    churn_project: ChurnProject,
    shipyard_wheel: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The image's install line, run as written in a fresh venv (no Docker here).

    The venv sees this environment's packages (a .pth file), so the pinned requirements
    resolve offline (``--no-index``) to what is installed here. What it proves: the wheel
    in the build folder installs, the pins in requirements.txt are satisfiable together
    with it, and the installed `shipyard` entry point runs and imports the service. Not
    proven: that PyPI serves those pins to python:3.X-slim (no network install here).
    """
    folder = tmp_path / "build"
    assert (
        run(churn_project, "build", "churn@champion", "--output", str(folder), capsys=capsys)[0]
        == 0
    )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    ours = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = [path for path in sys.path if path.endswith("site-packages")]
    (Path(ours) / "shipyard-test-deps.pth").write_text("\n".join(here) + "\n")
    dockerfile = (folder / "Dockerfile").read_text()
    (install,) = [line[4:] for line in dockerfile.splitlines() if line.startswith("RUN python")]
    command = install.replace("python -m pip install", f"{python} -m pip install --no-index")
    completed = subprocess.run(
        command.split(), cwd=folder, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    check = subprocess.run(
        [str(env_dir / "bin" / "shipyard"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and "shipyard" in check.stdout
    where = subprocess.run(
        [str(python), "-c", "import shipyard.serving.app as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert str(env_dir) in where.stdout, where.stdout + where.stderr


def test_monitor_labels_reports_bad_rows_by_number(
    churn_project: ChurnProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord
    from shipyard.store.stores import open_stores

    with open_stores(churn_project.config) as stores:
        writer = PredictionLogWriter(stores.metadata)
        for index in range(3):
            writer.log(
                PredictionRecord(
                    f"cli-{index}",
                    "champion",
                    "churn",
                    1,
                    "sha256:x",
                    "champion",
                    {"a": 1},
                    0.3,
                    1.0,
                )
            )
        writer.close()
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\ncli-0,yes\ncli-1,no\nunknown-9,yes\n,no\ncli-2,\n")
    code, out, err = run(churn_project, "monitor", "labels", str(labels), "--json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["stored"] == 2
    assert [(row["row"], row["reason"]) for row in report["bad_rows"]] == [
        (3, "no prediction has this request id"),
        (4, "the request_id is empty"),
        (5, "the label is empty"),
    ]
    (tmp_path / "nolabel.csv").write_text("request_id,target\ncli-0,1\n")
    code, _, err = run(
        churn_project, "monitor", "labels", str(tmp_path / "nolabel.csv"), capsys=capsys
    )
    assert code == 1 and "no column label" in err
    code, _, err = run(churn_project, "monitor", "labels", str(tmp_path / "x.csv"), capsys=capsys)
    assert code == 1 and "does not exist" in err


def test_serve_refuses_bad_references_and_settings_before_binding(
    churn_project: ChurnProject,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(churn_project, "serve", "churn@nope", capsys=capsys)
    assert code == 1 and "no alias 'nope'" in err
    code, _, err = run(churn_project, "serve", "churn@@x", capsys=capsys)
    assert code == 1 and "more than one '@'" in err
    code, _, err = run(churn_project, "serve", "churn@champion", "churn@v2", capsys=capsys)
    assert code == 1 and "named twice" in err
    monkeypatch.setenv("SHIPYARD_SERVING_PORT", "eighty")
    code, _, err = run(churn_project, "serve", "churn@champion", capsys=capsys)
    assert code == 1 and "serving.port is 'eighty'" in err
    monkeypatch.setenv("SHIPYARD_SERVING_PORT", "8000")
    monkeypatch.setenv("SHIPYARD_SERVING_API_KEY", "short")
    code, _, err = run(churn_project, "serve", "churn@champion", capsys=capsys)
    assert code == 1 and "api_key is shorter" in err
