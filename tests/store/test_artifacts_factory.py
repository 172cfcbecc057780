"""Choosing the artifact store from a location: folders, file:// and s3:// URIs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.core.errors import ConfigError
from shipyard.store.artifacts_factory import open_artifact_store
from shipyard.store.artifacts_local import LocalArtifactStore
from shipyard.store.artifacts_s3 import S3ArtifactStore


def test_relative_folder_resolves_against_base_dir(tmp_path: Path) -> None:
    store = open_artifact_store("data/artifacts", base_dir=tmp_path)

    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path / "data" / "artifacts"
    assert not (tmp_path / "data").exists()  # opening writes nothing


def test_relative_folder_without_base_dir_uses_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = open_artifact_store("artifacts")

    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path / "artifacts"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/srv/shipyard/artifacts", "/srv/shipyard/artifacts"),
        ("file:///srv/shipyard/artifacts", "/srv/shipyard/artifacts"),
        ("file://localhost/srv/shipyard/artifacts", "/srv/shipyard/artifacts"),
        ("FILE:///srv/my%20artifacts", "/srv/my artifacts"),
        ("  /srv/shipyard/artifacts  ", "/srv/shipyard/artifacts"),
    ],
)
def test_absolute_locations_ignore_base_dir(uri: str, expected: str, tmp_path: Path) -> None:
    store = open_artifact_store(uri, base_dir=tmp_path)

    assert isinstance(store, LocalArtifactStore)
    assert store.root == Path(expected)


def test_home_folder_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    store = open_artifact_store("~/artifacts", base_dir=Path("/elsewhere"))

    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path / "artifacts"


def test_s3_uri_opens_a_working_s3_store(s3_endpoint: str, s3_bucket: str) -> None:
    with open_artifact_store(f"s3://{s3_bucket}/team/", s3_endpoint_url=s3_endpoint) as store:
        assert isinstance(store, S3ArtifactStore)
        assert store.uri == f"s3://{s3_bucket}/team"
        blob_id = store.put_bytes(b"weights")
        assert store.get_bytes(blob_id) == b"weights"


@pytest.mark.parametrize("uri", ["gs://bucket/ml", "ftp://host/ml", "hdfs://nn/ml", "HTTP://x"])
def test_unknown_scheme_names_it_and_the_supported_ones(uri: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_artifact_store(uri)

    message = str(caught.value)
    scheme = uri.split("://")[0].lower()
    assert f"unsupported scheme '{scheme}://'" in message
    assert uri in message
    assert "local folder" in message
    assert "file://" in message
    assert "s3://" in message


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("s3://", "names no bucket"),
        ("s3:///ml", "names no bucket"),
        ("s3://ab/ml", "invalid bucket name 'ab'"),
        ("s3://" + "a" * 64, "invalid bucket name"),
        ("s3://ML_Artifacts/x", "invalid bucket name 'ML_Artifacts'"),
        ("s3://-artifacts", "invalid bucket name '-artifacts'"),
        ("s3://ml..artifacts", "invalid bucket name 'ml..artifacts'"),
    ],
)
def test_bad_s3_uri_is_a_config_error(uri: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        open_artifact_store(uri)


def test_longest_and_shortest_bucket_names_are_accepted() -> None:
    assert open_artifact_store("s3://abc").uri == "s3://abc"
    assert open_artifact_store("s3://" + "a" * 63 + "/p").uri == "s3://" + "a" * 63 + "/p"


@pytest.mark.parametrize("uri", ["file://fileserver/share/ml", "file://", ""])
def test_bad_local_locations_are_config_errors(uri: str) -> None:
    with pytest.raises(ConfigError):
        open_artifact_store(uri)


def test_s3_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # makes `import s3fs` fail

    with pytest.raises(ConfigError) as caught:
        open_artifact_store("s3://ml-artifacts/churn")

    assert "pip install 'shipyard[s3]'" in str(caught.value)


def test_opening_a_local_store_does_not_import_s3_libraries() -> None:
    code = (
        "import sys; from shipyard.store.artifacts_factory import open_artifact_store; "
        "open_artifact_store('artifacts'); "
        "from shipyard.store import artifacts_s3, gc; "
        "loaded = {'s3fs', 'botocore', 'fsspec'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
