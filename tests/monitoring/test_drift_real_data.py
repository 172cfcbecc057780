"""Real data (issue 9, point 7): drift planted in real churn columns alerts; unshifted
samples of the same data do not. The reference comes from a dataset version's profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest

from shipyard.core.config import Config
from shipyard.core.errors import DataContractError
from shipyard.data.client import DatasetClient
from shipyard.monitoring.drift import DriftDetector
from shipyard.monitoring.multivariate import DomainClassifier
from shipyard.monitoring.reference import Reference, reference_from_dataset
from shipyard.monitoring.windows import window_from_dataset
from shipyard.store.metadata import open_metadata_store
from tests.data.conftest import make_project


@pytest.fixture(scope="module")
def churn(datasets_dir: Path) -> pa.Table:
    return pcsv.read_csv(datasets_dir / "mlc_churn.csv")


def _halves(table: pa.Table, seed: int) -> tuple[pa.Table, pa.Table]:
    order = np.random.default_rng(seed).permutation(table.num_rows)
    half = table.num_rows // 2
    return table.take(order[:half]), table.take(order[half:])


def _shift(table: pa.Table, name: str, change: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, change)


def _planted(current: pa.Table, seed: int) -> pa.Table:
    """More customer-service calls (a third of the customers call twice more) and
    charges 12% higher, as after a price rise."""
    rng = np.random.default_rng(seed)
    calls = current.column("number_customer_service_calls").to_numpy()
    extra = np.where(rng.random(len(calls)) < 1 / 3, 2, 0)
    shifted = _shift(current, "number_customer_service_calls", pa.array(calls + extra))
    return _shift(
        shifted, "total_day_charge", pc.multiply(shifted.column("total_day_charge"), 1.12)
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_unshifted_halves_do_not_alert_and_planted_drift_does(churn: pa.Table, seed: int) -> None:
    reference, current = _halves(churn, seed)
    detector = DriftDetector(label="churn").fit(reference)
    clean = detector.detect(current)
    assert not clean.alert, [(c.name, c.reason) for c in clean.columns if c.drifted]
    planted = detector.detect(_planted(current, seed))
    assert set(planted.drifted_columns) == {"number_customer_service_calls", "total_day_charge"}
    assert not planted.dataset_drift  # 2 of 19 features


def test_smaller_windows_of_real_data(churn: pa.Table) -> None:
    """300-row windows: decided by KS and chi-square; the planted drift still shows."""
    reference, current = _halves(churn, 7)
    detector = DriftDetector(columns=["number_customer_service_calls", "total_day_charge"])
    detector.fit(reference)
    window = current.slice(0, 300)
    assert not detector.detect(window).alert
    planted = detector.detect(_planted(window, 7))
    assert {c.method for c in planted.columns} == {"ks"}
    assert set(planted.drifted_columns) == {"number_customer_service_calls", "total_day_charge"}


def test_multivariate_auc_on_planted_and_clean_data(churn: pa.Table) -> None:
    reference, current = _halves(churn, 11)
    classifier = DomainClassifier(max_rows=1_000)
    features = [c for c in churn.column_names if c != "churn"]
    clean = classifier.fit(Reference.from_table(reference, columns=features)).score(current)
    # a joint change the marginals hide: swap day and evening minutes for half the rows
    swapped = current
    day = current.column("total_day_minutes").to_numpy()
    evening = current.column("total_eve_minutes").to_numpy()
    half = np.arange(len(day)) % 2 == 0
    swapped = _shift(swapped, "total_day_minutes", pa.array(np.where(half, evening, day)))
    swapped = _shift(swapped, "total_eve_minutes", pa.array(np.where(half, day, evening)))
    joint = classifier.score(swapped)
    planted = classifier.score(_planted(current, 11))
    print(
        f"\ndomain classifier AUC: clean {clean.auc:.3f}, planted {planted.auc:.3f}, "
        f"joint-only {joint.auc:.3f} (threshold {clean.threshold:.3f})"
    )
    assert clean.auc < 0.55 and not clean.drifted
    assert planted.auc > 0.9 and planted.drifted
    assert joint.drifted


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Config]:
    template = tmp_path / "template.db"
    open_metadata_store(f"sqlite:///{template}").close()
    yield make_project(tmp_path / "project", template)


def test_reference_from_a_dataset_versions_profile(
    churn: pa.Table, project: Config, tmp_path: Path
) -> None:
    reference_half, current_half = _halves(churn, 3)
    with DatasetClient.open(project) as client:
        client.ingest("churn", reference_half)
        client.ingest("churn_live", _planted(current_half, 3))
        client.ingest("churn_live", current_half)
        reference = reference_from_dataset("churn@v1", client=client)
        profile = client.profile("churn@v1")
        planted_window = window_from_dataset("churn_live@v1", client=client)
        clean_window = window_from_dataset("churn_live@v2", client=client)
    assert reference.source == "churn@v1" and reference.rows == reference_half.num_rows
    calls = reference.columns["number_customer_service_calls"]
    assert calls.kind == "numeric" and calls.rows == reference_half.num_rows
    state = reference.columns["state"]
    assert state.kind == "categorical" and not state.complete  # 51 states, top 50 listed
    detector = DriftDetector(label="churn").fit(reference)
    assert not detector.detect(clean_window).alert
    planted = detector.detect(planted_window)
    assert planted.window == "churn_live@v1"
    assert set(planted.drifted_columns) == {"number_customer_service_calls", "total_day_charge"}
    # the profile's reference gives the same verdicts as the table's
    from_table = DriftDetector(label="churn").fit(reference_half).detect(planted_window.table)
    assert set(from_table.drifted_columns) == set(planted.drifted_columns)
    # without the sample, numeric columns are read off the profile's quantile sketches
    sketched = Reference.from_profile(profile, None, source="churn@v1")
    assert len(sketched.columns["total_day_charge"].values) == 1_000
    by_sketch = DriftDetector(label="churn").fit(sketched)
    assert set(by_sketch.detect(planted_window).drifted_columns) == set(planted.drifted_columns)
    assert not by_sketch.detect(clean_window).alert
    with pytest.raises(DataContractError, match="not a shipyard.profile.v1"):
        Reference.from_profile({"columns": []}, None)
    with pytest.raises(DataContractError, match="not comparable columns"):
        Reference.from_profile(profile, None, columns=["no_such_column"])
    page = planted.save_html(tmp_path / "report" / "drift.html")
    assert "total_day_charge" in page.read_text()
