"""``shipyard datasets copy``: one version to other stores, and every way to get it wrong."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shipyard.cli.main import main
from shipyard.core.config import Config, load_config
from shipyard.core.ids import ContentId
from shipyard.data.client import DatasetClient


def run(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-C", str(config.project_dir), "datasets", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def credit(config: Config, capsys: pytest.CaptureFixture[str], credit_csv: Path) -> str:
    code, _, err = run(config, capsys, "ingest", "credit", str(credit_csv))
    assert code == 0, err
    return "credit@v1"


@pytest.fixture
def tiny(config: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """A three-row 'credit' dataset: the mistakes below need a version, not real data."""
    csv = tmp_path / "tiny.csv"
    csv.write_text("id,amount\n1,2.5\n2,3.5\n3,\n")
    code, _, err = run(config, capsys, "ingest", "credit", str(csv))
    assert code == 0, err
    return "credit@v1"


def test_copy_a_table_version_to_other_stores_once(
    config: Config, capsys: pytest.CaptureFixture[str], credit: str, tmp_path: Path
) -> None:
    database = tmp_path / "prod" / "metadata.db"
    artifacts = tmp_path / "prod" / "artifacts"
    code, out, err = run(
        config, capsys, "copy", credit, "--to", f"sqlite:///{database}", "--to", str(artifacts)
    )
    assert code == 0, err
    assert out.startswith(f"{credit} is credit@v1 in sqlite:///{database} and {artifacts}")
    target = load_config(
        tmp_path / "prod",
        environ={
            "SHIPYARD_STORE_METADATA": f"sqlite:///{database}",
            "SHIPYARD_STORE_ARTIFACTS": str(artifacts),
        },
    )
    with DatasetClient.open(config) as source, DatasetClient.open(target) as copied:
        assert copied.read_table("credit").equals(source.read_table("credit"))
        version = copied.get_version("credit@v1")
        assert version.source["copied_from"] == credit
        for blob, _ in version.blob_ids():
            copied.stores.artifacts.verify(ContentId(blob))
    blobs = sorted(p.name for p in artifacts.rglob("*") if p.is_file())
    code, out, err = run(
        config,
        capsys,
        "copy",
        "credit",
        "--to",
        f"sqlite:///{database}",
        "--to",
        str(artifacts),
        "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["version"]["reference"] == "credit@v1"  # already there: no v2
    assert sorted(p.name for p in artifacts.rglob("*") if p.is_file()) == blobs


def test_copy_a_file_version_to_another_artifact_store_only(
    config: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.png").write_bytes(os.urandom(200))
    assert run(config, capsys, "ingest", "images", str(folder), "--files")[0] == 0
    other = load_config(
        tmp_path / "elsewhere",
        environ={"SHIPYARD_STORE_METADATA": f"sqlite:///{tmp_path / 'elsewhere.db'}"},
    )
    code, _, err = run(
        config,
        capsys,
        "copy",
        "images@v1",
        "--to",
        f"sqlite:///{tmp_path / 'elsewhere.db'}",
        "--to",
        str(other.store.artifacts),
    )
    assert code == 0, err
    export = tmp_path / "out"
    with DatasetClient.open(other) as copied:
        copied.export("images@v1", export)
    assert sorted(p.name for p in export.iterdir()) == [f"{i}.png" for i in range(5)]
    assert (export / "3.png").read_bytes() == (folder / "3.png").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["copy", "credit@v1"], "Missing option '--to'"),
        (["copy", "credit@@v1", "--to", "sqlite:///x.db"], "credit@@v1"),
        (
            ["copy", "nothing@v1", "--to", "sqlite:///{tmp}/x.db"],
            "Dataset 'nothing' does not exist",
        ),
        (["copy", "credit@v9", "--to", "sqlite:///{tmp}/x.db"], "has no version '9'"),
        (
            ["copy", "credit@v1", "--to", "sqlite:///{tmp}/a.db", "--to", "sqlite:///{tmp}/b.db"],
            "--to names 2 databases and 0 artifact stores",
        ),
        (
            ["copy", "credit@v1", "--to", "{tmp}/a", "--to", "{tmp}/b"],
            "--to names 0 databases and 2 artifact stores",
        ),
        (["copy", "credit@v1", "--to", "ftp://host/x"], "unknown artifact store scheme 'ftp://'"),
        (["copy", "credit@v1", "--to", "{project}/.shipyard/artifacts"], "current stores"),
        (["copy", "credit@v1", "--to", "{tmp}/a-file/artifacts"], "is a file"),
        (["copy", "credit@v1", "--to", "mysql://me@db/x"], "unknown artifact store scheme"),
    ],
)
def test_copy_mistakes_get_one_clear_line_and_write_nothing(
    config: Config,
    capsys: pytest.CaptureFixture[str],
    tiny: str,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    scratch = tmp_path / "targets"
    scratch.mkdir()
    (scratch / "a-file").write_text("in the way")
    filled = [
        a.replace("{tmp}", str(scratch)).replace("{project}", str(config.project_dir)) for a in args
    ]
    code, out, err = run(config, capsys, *filled)
    assert code != 0 and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in scratch.iterdir()) == ["a-file"]  # nothing written


def test_copy_to_another_artifact_store_with_the_same_catalog_copies_the_blobs(
    config: Config, capsys: pytest.CaptureFixture[str], credit: str, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    code, _, err = run(config, capsys, "copy", credit, "--to", str(mirror))
    assert code == 0, err
    with DatasetClient.open(config) as client:
        version = client.get_version(credit)
    target = load_config(config.project_dir, environ={"SHIPYARD_STORE_ARTIFACTS": str(mirror)})
    with DatasetClient.open(target) as copied:
        for blob, _ in version.blob_ids():
            copied.stores.artifacts.verify(ContentId(blob))
        assert copied.list_versions("credit")[0].number == 1  # the catalog is shared: no v2


def test_copy_to_s3_names_its_endpoint_on_the_command_line(
    config: Config,
    capsys: pytest.CaptureFixture[str],
    credit: str,
    tmp_path: Path,
    s3_endpoint: str,
    s3_bucket: str,
) -> None:
    database = tmp_path / "remote.db"
    code, _, err = run(
        config,
        capsys,
        "copy",
        credit,
        "--to",
        f"s3://{s3_bucket}/prod",
        "--to",
        f"sqlite:///{database}",
        "--s3-endpoint-url",
        s3_endpoint,
    )
    assert code == 0, err
    remote = load_config(
        tmp_path / "remote",
        environ={
            "SHIPYARD_STORE_METADATA": f"sqlite:///{database}",
            "SHIPYARD_STORE_ARTIFACTS": f"s3://{s3_bucket}/prod",
            "SHIPYARD_S3_ENDPOINT_URL": s3_endpoint,
        },
    )
    with DatasetClient.open(config) as source, DatasetClient.open(remote) as copied:
        assert copied.read_table("credit").equals(source.read_table("credit"))
