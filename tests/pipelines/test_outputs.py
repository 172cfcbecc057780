"""Step outputs as typed artifacts: each kind round-trips, ids are stable, unsafe types refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from shipyard.core.errors import IntegrityError
from shipyard.core.ids import ContentId
from shipyard.pipelines.errors import PipelineDefinitionError, StepOutputError
from shipyard.pipelines.outputs import output_problem, read_output, write_output
from shipyard.store.artifacts_local import LocalArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalArtifactStore]:
    with LocalArtifactStore(tmp_path / "artifacts") as opened:
        yield opened


@pytest.fixture(scope="module")
def churn(datasets_dir: Path) -> pd.DataFrame:
    return pd.read_csv(datasets_dir / "mlc_churn.csv")


def roundtrip(store: LocalArtifactStore, value: Any, **options: Any) -> tuple[Any, Any]:
    allow = options.pop("allow_pickle", False)
    record = write_output(value, store, step="s", output="out", allow_pickle=allow)
    return record, read_output(record, store, allow_pickle=allow, reader="t")


def test_tables_keep_their_library_and_content(
    store: LocalArtifactStore, churn: pd.DataFrame
) -> None:
    record, back = roundtrip(store, churn)
    assert record.kind == "table" and record.python_type == "pandas.DataFrame"
    assert record.detail["rows"] == 5000 and record.detail["columns"][0] == "state"
    pd.testing.assert_frame_equal(back, churn)

    arrow = pa.Table.from_pandas(churn, preserve_index=False)
    record, back = roundtrip(store, arrow)
    assert record.python_type == "pyarrow.Table" and back.equals(arrow)

    polars_frame = pl.from_pandas(churn)
    record, back = roundtrip(store, polars_frame)
    assert record.python_type == "polars.DataFrame" and back.equals(polars_frame)


def test_the_same_table_gives_the_same_id_however_it_is_chunked(
    store: LocalArtifactStore, churn: pd.DataFrame
) -> None:
    table = pa.Table.from_pandas(churn, preserve_index=False)
    rechunked = pa.concat_tables([table.slice(0, 1234), table.slice(1234)])
    first = write_output(table, store, step="s", output="o", allow_pickle=False)
    second = write_output(rechunked, store, step="s", output="o", allow_pickle=False)
    assert first.id == second.id
    changed = table.set_column(1, "account_length", pa.array(np.zeros(5000, dtype="int64")))
    assert write_output(changed, store, step="s", output="o", allow_pickle=False).id != first.id


def test_json_numpy_and_numpy_scalars(store: LocalArtifactStore) -> None:
    record, back = roundtrip(store, {"b": [1, 2.5, None], "a": "x", "ok": True})
    assert record.kind == "json" and back == {"a": "x", "b": [1, 2.5, None], "ok": True}
    assert write_output({"a": 1, "b": 2}, store, step="s", output="o", allow_pickle=False).id == (
        write_output({"b": 2, "a": 1}, store, step="s", output="o", allow_pickle=False).id
    )
    array = np.arange(12, dtype="float32").reshape(3, 4)
    record, back = roundtrip(store, array)
    assert record.kind == "numpy" and record.detail == {"shape": [3, 4], "dtype": "float32"}
    np.testing.assert_array_equal(back, array)
    record, back = roundtrip(store, np.float64(0.25))
    assert record.kind == "json" and back == 0.25


def test_a_model_gets_the_same_id_from_every_save(
    store: LocalArtifactStore, churn: pd.DataFrame
) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = churn.select_dtypes("number")

    def fitted() -> Any:
        model = make_pipeline(StandardScaler(), RandomForestClassifier(5, random_state=3))
        return model.fit(features, churn["churn"])

    first, back = roundtrip(store, fitted())
    second = write_output(fitted(), store, step="s", output="o", allow_pickle=False)
    # skops files differ byte for byte between saves (member names are memory addresses)
    assert set(first.blobs.values()) != set(second.blobs.values())
    assert first.id == second.id
    assert first.kind == "model" and first.detail["flavor"] == "sklearn"
    np.testing.assert_array_equal(back.predict(features), fitted().predict(features))
    other = make_pipeline(StandardScaler(), RandomForestClassifier(5, random_state=4))
    third = write_output(
        other.fit(features, churn["churn"]), store, step="s", output="o", allow_pickle=False
    )
    assert third.id != first.id


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


def test_unsupported_values_need_an_explicit_pickle_opt_in(store: LocalArtifactStore) -> None:
    with pytest.raises(StepOutputError, match=r"Step 's' returned a .*Opaque.*allow_pickle=True"):
        write_output(Opaque(1), store, step="s", output="out", allow_pickle=False)
    with pytest.raises(StepOutputError, match="object arrays"):
        write_output(np.array([Opaque(1)]), store, step="s", output="out", allow_pickle=False)
    with pytest.raises(StepOutputError, match="to_frame"):
        write_output(pd.Series([1, 2]), store, step="s", output="out", allow_pickle=False)
    record = write_output(Opaque(5), store, step="s", output="out", allow_pickle=True)
    assert record.kind == "pickle"
    with pytest.raises(
        PipelineDefinitionError, match="declare @step\\(allow_pickle=True\\) on 'reader'"
    ):
        read_output(record, store, allow_pickle=False, reader="reader")
    assert read_output(record, store, allow_pickle=True, reader="reader").value == 5


def test_a_deleted_or_corrupted_blob_makes_the_output_unusable(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    record = write_output([1, 2, 3], store, step="s", output="o", allow_pickle=False)
    assert output_problem(record, store) is None
    blob = ContentId(next(iter(record.blobs.values())))
    path = next((tmp_path / "artifacts" / "blobs").rglob(blob.split(":")[1]))
    path.chmod(0o644)
    path.write_bytes(b"[1,2,4]")
    assert "no longer matches" in str(output_problem(record, store))
    with pytest.raises(IntegrityError):
        read_output(record, store, allow_pickle=False, reader="t")
    store.delete(blob)
    assert "missing" in str(output_problem(record, store))


def test_a_model_output_is_stored_whole_and_loads_from_its_blobs(
    store: LocalArtifactStore, churn: pd.DataFrame, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from shipyard.formats import load_model

    features = churn.select_dtypes("number")
    model = RandomForestClassifier(3, max_depth=3, random_state=0).fit(features, churn["churn"])
    record = write_output(model, store, step="s", output="o", allow_pickle=False)
    assert output_problem(record, store) is None
    folder = tmp_path / "from-blobs"
    folder.mkdir()
    for name, blob in record.blobs.items():
        store.get_file(ContentId(blob), folder / name)
    np.testing.assert_array_equal(load_model(folder).predict(features), model.predict(features))
    assert not list((tmp_path / "artifacts" / "tmp").glob("*"))  # no temporaries left


def test_a_model_identity_does_not_depend_on_the_recorded_digest(
    churn: pd.DataFrame, tmp_path: Path
) -> None:
    import dataclasses

    from sklearn.tree import DecisionTreeClassifier

    from shipyard.formats import save_model
    from shipyard.formats.sklearn import CANONICAL_DIGEST_OPTION
    from shipyard.pipelines.model_identity import model_identity

    features = churn.select_dtypes("number")
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, churn["churn"])
    info = save_model(model, tmp_path / "model")
    # A manifest written before the digest was recorded: the file is read instead.
    options = {k: v for k, v in info.flavor_options.items() if k != CANONICAL_DIGEST_OPTION}
    older = dataclasses.replace(info, flavor_options=options)
    assert model_identity(older, tmp_path / "model") == model_identity(info, tmp_path / "model")
    changed = dataclasses.replace(info, flavor_options={**options, CANONICAL_DIGEST_OPTION: "x"})
    assert model_identity(changed, tmp_path / "model") != model_identity(info, tmp_path / "model")
