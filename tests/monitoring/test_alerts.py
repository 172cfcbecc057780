"""Alert rules: severities, deduplication, cool-down, escalation, resolution, stored state."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from shipyard.core.errors import ConfigError, DataContractError, NotFoundError
from shipyard.monitoring.alerts import (
    AlertManager,
    AlertRule,
    Finding,
    default_rules,
    drift_findings,
    parse_rules,
)
from shipyard.monitoring.channels import Delivery
from shipyard.store.metadata import MetadataStore, open_metadata_store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alerts") / "template.db"
    open_metadata_store(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def metadata(tmp_path: Path, migrated: Path) -> Iterator[MetadataStore]:
    copy = tmp_path / "m.db"
    shutil.copyfile(migrated, copy)
    store = open_metadata_store(f"sqlite:///{copy}")
    yield store
    store.close()


@pytest.fixture
def postgres_metadata(postgres_uri: str) -> Iterator[MetadataStore]:
    store = open_metadata_store(postgres_uri)
    yield store
    store.close()


def drift(subject: str = "total_day_charge", value: float = 0.15, breached: bool = True) -> Finding:
    return Finding(
        kind="data_drift",
        model="churn",
        subject=subject,
        breached=breached,
        message=f"{subject} drifted" if breached else f"{subject} stable",
        value=value,
        bound=">= 0.1",
        window="2026-11-01",
    )


RULES = [
    AlertRule("drift", kind="data_drift", severity="warning", cooldown=timedelta(hours=1)),
    AlertRule(
        "drift_big",
        kind="data_drift",
        severity="critical",
        when=">= 0.3",
        cooldown=timedelta(hours=1),
        notify_resolved=True,
    ),
]


def _lifecycle(metadata: MetadataStore) -> None:
    manager = AlertManager(metadata, RULES)
    fired = manager.evaluate([drift()], now=T0)
    assert [(a.event, a.severity, a.rule, a.count) for a in fired] == [
        ("fired", "warning", "drift", 1)
    ]
    first = fired[0]
    # The same problem within the cool-down: folded into the alert, not sent again.
    assert manager.evaluate([drift(value=0.16)], now=T0 + timedelta(minutes=20)) == []
    # State is in the store: a monitor that restarted agrees nothing is due.
    again = AlertManager(metadata, RULES)
    assert again.evaluate([drift()], now=T0 + timedelta(minutes=40)) == []
    stored = again.get(first.id)
    assert (stored.count, stored.notifications, stored.value) == (3, 1, 0.15)
    # After the cool-down it is sent again, as a reminder of the same alert.
    repeated = again.evaluate([drift()], now=T0 + timedelta(hours=1, minutes=1))
    assert [(a.id, a.event, a.notifications) for a in repeated] == [(first.id, "repeated", 2)]
    # A more severe finding escalates at once, cool-down or not.
    escalated = again.evaluate([drift(value=0.4)], now=T0 + timedelta(hours=1, minutes=5))
    assert [(a.id, a.event, a.severity) for a in escalated] == [(first.id, "escalated", "critical")]
    # A milder finding does not quietly downgrade it.
    assert again.evaluate([drift(value=0.12)], now=T0 + timedelta(hours=1, minutes=6)) == []
    assert again.get(first.id).severity == "critical"
    # The check finds the column stable: resolved (and sent: its rule notifies).
    resolved = again.evaluate([drift(breached=False)], now=T0 + timedelta(hours=2))
    assert [(a.id, a.event, a.status) for a in resolved] == [(first.id, "resolved", "resolved")]
    # A new breach later is a new alert.
    later = again.evaluate([drift()], now=T0 + timedelta(hours=3))
    assert [a.event for a in later] == ["fired"] and later[0].id != first.id
    assert [a.status for a in again.alerts(model="churn")] == ["firing", "resolved"]


def test_dedup_cooldown_escalation_and_resolution_sqlite(metadata: MetadataStore) -> None:
    _lifecycle(metadata)


def test_dedup_cooldown_escalation_and_resolution_postgres(
    postgres_metadata: MetadataStore,
) -> None:
    _lifecycle(postgres_metadata)


def test_two_monitors_at_once_raise_one_alert_postgres(postgres_metadata: MetadataStore) -> None:
    managers = [AlertManager(postgres_metadata, RULES) for _ in range(4)]
    results: list[int] = []
    barrier = threading.Barrier(len(managers))

    def run(manager: AlertManager) -> None:
        barrier.wait()
        results.append(len(manager.evaluate([drift()], now=T0)))

    threads = [threading.Thread(target=run, args=(m,)) for m in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert len(managers[0].alerts()) == 1


def test_one_alert_per_problem_most_severe_rule_wins(metadata: MetadataStore) -> None:
    manager = AlertManager(metadata, RULES)
    fired = manager.evaluate(
        [drift("a", 0.5), drift("a", 0.2), drift("b", 0.2), drift("c", breached=False)], now=T0
    )
    assert sorted((a.subject, a.severity) for a in fired) == [("a", "critical"), ("b", "warning")]
    # Other models and kinds are other problems.
    other = Finding("data_drift", "fraud", "a", True, "drift", value=0.2)
    perf = Finding("performance", "churn", "recall", True, "recall 0.4 < 0.6", value=0.4)
    assert [a.model for a in manager.evaluate([other, perf], now=T0)] == ["fraud"]
    # A rule's when-bound needs a value: a finding without one does not meet it.
    assert manager.rule_for(drift("d", value=0.5)) is RULES[1]
    no_value = Finding("data_drift", "churn", "d", True, "new categories")
    assert manager.rule_for(no_value) is RULES[0]


def test_subject_and_model_globs(metadata: MetadataStore) -> None:
    rules = [AlertRule("charges", kind="data_drift", subject="total_*", model="ch*")]
    manager = AlertManager(metadata, rules)
    fired = manager.evaluate([drift("total_day_charge"), drift("state")], now=T0)
    assert [a.subject for a in fired] == ["total_day_charge"]


def test_deliveries_are_recorded_with_the_alert(metadata: MetadataStore) -> None:
    manager = AlertManager(metadata, RULES)
    (alert,) = manager.evaluate([drift()], now=T0)
    manager.record_deliveries(
        alert,
        [Delivery("log", True, 1, None, 0.2), Delivery("hook", False, 3, "HTTP 500", 12.0)],
    )
    rows = manager.deliveries(alert.id)
    assert [(r["channel"], r["ok"], r["attempts"], r["error"]) for r in rows] == [
        ("log", True, 1, None),
        ("hook", False, 3, "HTTP 500"),
    ]
    assert manager.resolve(alert.id).status == "resolved"
    with pytest.raises(NotFoundError, match="Alert 9999"):
        manager.get(9999)


def test_findings_from_a_real_drift_report(metadata: MetadataStore, datasets_dir: Path) -> None:
    from shipyard.monitoring.drift import DriftDetector

    churn = pcsv.read_csv(datasets_dir / "mlc_churn.csv")
    reference, current = churn.slice(0, 2500), churn.slice(2500, 2500)
    detector = DriftDetector(columns=["total_day_charge", "total_eve_calls", "state"]).fit(
        reference
    )
    charges = current.column("total_day_charge").to_numpy() * 1.25
    index = current.schema.get_field_index("total_day_charge")
    shifted = current.set_column(index, "total_day_charge", pa.array(charges))
    manager = AlertManager(metadata, default_rules())
    fired = manager.evaluate(drift_findings(detector.detect(shifted), model="churn"), now=T0)
    assert {(a.kind, a.subject) for a in fired} >= {("data_drift", "total_day_charge")}
    assert all(a.subject != "total_eve_calls" for a in fired)
    # The same data unshifted: the column alert resolves.
    clean = drift_findings(detector.detect(current), model="churn")
    manager.evaluate(clean, now=T0 + timedelta(hours=1))
    charge = next(a for a in fired if a.subject == "total_day_charge")
    assert manager.get(charge.id).status == "resolved"
    assert np.isfinite([a.value for a in fired if a.value is not None]).all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"severity": "urgent"}, "severity 'urgent' is unknown"),
        ({"when": "big"}, "when must be a bound"),
        ({"when": ">= 0.3; drop table"}, "when must be a bound"),
        ({"cooldown": timedelta(seconds=-1)}, "cooldown"),
        ({"cooldown": 3600}, "cooldown"),
        ({"kind": ""}, "kind must name"),
        ({"subject": ""}, "subject must be a glob"),
        ({"notify_resolved": "yes"}, "notify_resolved"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(arguments: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"kind": "data_drift", **arguments}
    with pytest.raises(ConfigError, match=message):
        AlertRule("r", **values)  # type: ignore[arg-type]


def test_rules_from_a_config_table(metadata: MetadataStore) -> None:
    rules = parse_rules(
        {
            "drift": {"kind": "data_drift", "severity": "warning", "cooldown": "6h"},
            "perf": {"kind": "performance", "severity": "critical", "cooldown": 90},
        }
    )
    assert [(r.name, r.cooldown) for r in rules] == [
        ("drift", timedelta(hours=6)),
        ("perf", timedelta(seconds=90)),
    ]
    for table, message in [
        ({"x": {"kind": "data_drift", "cooldwn": "1h"}}, "unknown key 'cooldwn'"),
        ({"x": {"severity": "warning"}}, "missing 'kind'"),
        ({"x": {"kind": "data_drift", "cooldown": "soon"}}, "cooldown is 'soon'"),
        ({"x": {"kind": "data_drift", "cooldown": "9999d"}}, "at most a year"),
        ({"x": "data_drift"}, "must be a table"),
        ([], "must be a table of rules"),
        ({}, "must be a table of rules"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_rules(table)
    with pytest.raises(ConfigError, match="declared twice"):
        AlertManager(metadata, [RULES[0], RULES[0]])


def test_bad_findings_and_times_are_refused(metadata: MetadataStore) -> None:
    manager = AlertManager(metadata, RULES)
    with pytest.raises(DataContractError, match="subject"):
        Finding("data_drift", "churn", "  ", True, "x")
    with pytest.raises(DataContractError, match="value"):
        Finding("data_drift", "churn", "a", True, "x", value="high")  # type: ignore[arg-type]
    with pytest.raises(DataContractError, match="Finding objects"):
        manager.evaluate([{"kind": "data_drift"}])  # type: ignore[list-item]
    with pytest.raises(DataContractError, match="no time zone"):
        manager.evaluate([drift()], now=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(DataContractError, match="status"):
        manager.alerts(status="open")  # type: ignore[arg-type]
    # Hostile sizes are clipped, not refused: an alert must still be raised.
    huge = Finding("data_drift", "churn", "x" * 5000, True, "m" * 100_000, value=float("inf"))
    (alert,) = manager.evaluate([huge], now=T0)
    assert len(alert.subject) == 256 and len(alert.message) <= 4000 and alert.value is None
    assert manager.evaluate([], now=T0) == []
