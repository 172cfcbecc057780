"""Profiles of ingested tables, and in-memory tables hashed once (``CanonicalTable``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shipyard.data import canonical
from shipyard.data.client import DatasetClient
from shipyard.data.contracts import Column, Contract
from shipyard.data.profile import TOP_CATEGORIES
from shipyard.data.sources_memory import CanonicalTable


def test_float_profile_skips_nan_and_counts_it(client: DatasetClient) -> None:
    values = np.array([1.5, np.nan, -2.0, 4.0, np.nan, 0.5])
    table = pa.table({"x": pa.array(values), "y": pa.array([None, 1.0, None, 2.0, 3.0, None])})
    client.ingest("floats", table)
    x = client.profile("floats")["columns"]["x"]
    assert (x["count"], x["nulls"], x["nan"]) == (6, 0, 2)
    assert (x["min"], x["max"]) == (-2.0, 4.0)
    assert x["mean"] == pytest.approx(np.nanmean(values))
    assert x["std"] == pytest.approx(np.nanstd(values, ddof=1))
    y = client.profile("floats")["columns"]["y"]
    assert (y["count"], y["nulls"], y["nan"], y["max"]) == (3, 3, 0, 3.0)


def test_categories_rank_by_count_then_value_and_count_the_rest(client: DatasetClient) -> None:
    # 60 values: "v00" once ... "v59" 60 times, plus "tie" as often as "v59".
    labels = [f"v{i:02d}" for i in range(60) for _ in range(i + 1)] + ["tie"] * 60 + [None]
    flags = [i % 3 == 0 for i in range(len(labels))]
    client.ingest("labels", pa.table({"label": labels, "flag": flags}))
    columns = client.profile("labels")["columns"]
    categories = columns["label"]["categories"]
    assert categories["values"][:3] == [["tie", 60], ["v59", 60], ["v58", 59]]
    assert len(categories["values"]) == TOP_CATEGORIES and categories["complete"] is False
    listed = sum(n for _, n in categories["values"])
    assert categories["other"] == columns["label"]["count"] - listed == sum(range(1, 12))
    trues = sum(flags)
    assert columns["flag"]["categories"] == {
        "values": [[False, len(flags) - trues], [True, trues]],
        "other": 0,
        "complete": True,
    }


def shapes() -> pa.Table:
    return pa.table(
        {
            "key": pa.array(["a", None, "c"], pa.large_string()),
            "n": pa.array([1, 2, None], pa.int32()),
            "x": pa.array([0.5, float("nan"), None]),
        }
    )


def test_a_canonical_table_is_hashed_once_and_ingests_under_the_same_id(
    client: DatasetClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = client.ingest("plain", shapes()).version
    hashed = CanonicalTable.of(shapes(), name="shapes")
    assert hashed is not None and hashed.content_id == plain.content_id
    calls: list[int] = []
    original = canonical.TableHasher.update

    def counting(self: canonical.TableHasher, batch: pa.RecordBatch | pa.Table) -> None:
        calls.append(batch.num_rows)
        original(self, batch)

    monkeypatch.setattr(canonical.TableHasher, "update", counting)
    version = client.ingest("again", hashed).version
    assert version.content_id == plain.content_id and calls == []
    assert client.to_pandas("again").equals(client.to_pandas("plain"))  # NaN equals NaN
    # With a contract the rows may change, so ingestion hashes them itself.
    contract = Contract(columns={"n": Column("int64")})
    client.ingest("checked", hashed, contract)
    assert calls == [3]


def test_types_ingestion_converts_itself_are_not_hashed_ahead() -> None:
    nested = pa.table({"tags": pa.array([["a"], ["b", "c"]])})
    assert CanonicalTable.of(nested) is None
