"""Workers never receive the metadata store's password in their task arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.pipelines.errors import PipelineDefinitionError
from shipyard.pipelines.worker import _metadata_uri
from shipyard.store.metadata import mask_password

SECRET = "postgresql://shipyard:s3cret@db.internal:5432/shipyard"


def test_the_worker_reads_the_password_from_its_own_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_STORE_METADATA", SECRET)
    sent = mask_password(SECRET)
    assert "s3cret" not in sent
    assert _metadata_uri(sent, str(tmp_path)) == SECRET


def test_a_worker_configured_for_another_store_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_STORE_METADATA", SECRET.replace("db.internal", "other"))
    with pytest.raises(PipelineDefinitionError, match="same shipyard.toml") as caught:
        _metadata_uri(mask_password(SECRET), str(tmp_path))
    assert "s3cret" not in str(caught.value)


def test_uris_without_a_password_pass_unchanged(tmp_path: Path) -> None:
    uri = "postgresql://postgres@127.0.0.1:5432/test"
    assert _metadata_uri(uri, str(tmp_path)) == uri
