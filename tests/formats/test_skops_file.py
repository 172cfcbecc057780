"""A skops file read once: its untrusted types match skops', its canonical digest is stable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shipyard.formats import load_model, read_model_info, save_model
from shipyard.formats.sklearn import CANONICAL_DIGEST_OPTION, MODEL_FILE
from shipyard.formats.skops_file import read_skops, skops_file_digest


def forest(churn: tuple[Any, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    features, target = churn
    return RandomForestClassifier(4, max_depth=4, random_state=seed).fit(
        features.select_dtypes("number"), target
    )


def test_untrusted_types_are_the_ones_skops_reports(churn_pipeline: Any) -> None:
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    for model in (churn_pipeline, FunctionTransformer(os.path.basename)):
        data = skops.io.dumps(model)
        assert list(read_skops(data).untrusted_types) == skops.io.get_untrusted_types(data=data)


def test_two_saves_of_one_model_share_a_digest_that_the_manifest_records(
    tmp_path: Path, churn: tuple[Any, Any]
) -> None:
    model = forest(churn, seed=1)
    first = save_model(model, tmp_path / "first")
    second = save_model(model, tmp_path / "second")

    # The bytes differ (member names are memory addresses, entries carry the save time)...
    assert first.file(MODEL_FILE).content_id != second.file(MODEL_FILE).content_id
    # ...the canonical digest does not, and it is the digest of the file on disk.
    digest = first.flavor_options[CANONICAL_DIGEST_OPTION]
    assert digest.startswith("sha256:")
    assert second.flavor_options[CANONICAL_DIGEST_OPTION] == digest
    assert skops_file_digest(tmp_path / "second" / MODEL_FILE) == digest
    assert read_model_info(tmp_path / "first").flavor_options[CANONICAL_DIGEST_OPTION] == digest

    other = save_model(forest(churn, seed=2), tmp_path / "other")
    assert other.flavor_options[CANONICAL_DIGEST_OPTION] != digest


def test_a_file_that_is_not_skops_is_named(tmp_path: Path) -> None:
    import zipfile

    from shipyard.formats import ModelFormatError

    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other.json", "{}")
    with pytest.raises(ModelFormatError, match="has no schema.json"):
        skops_file_digest(path)


@pytest.mark.parametrize("durable", [True, False])
def test_durable_saves_fsync_and_scratch_saves_do_not(
    tmp_path: Path,
    churn: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    durable: bool,
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    model = forest(churn, seed=1)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    save_model(model, tmp_path / "model", durable=durable)
    monkeypatch.undo()

    if durable:  # each file (model, manifest) and both folders
        assert len(synced) >= 4
    else:
        assert synced == []
    features, _ = churn
    numeric = features.select_dtypes("number")
    assert (load_model(tmp_path / "model").predict(numeric) == model.predict(numeric)).all()
