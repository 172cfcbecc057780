"""One monitoring check of a served model: drift, performance, alerts, recorded.

A check looks at one window of a model version's prediction log and compares it with
the reference its training data gives:

1. the version (``churn`` means ``churn@champion``) and its training dataset version
   (``ModelVersion.dataset_versions[0]``): the reference is that version's stored
   profile and sample (:func:`~shipyard.monitoring.reference.reference_from_dataset`),
   and the model's scores on the sample are the reference of its score;
2. the window: the newest ``window`` records (a count) or those of the last ``window``
   (a ``timedelta``) of the log, one arm (``champion`` by default), read with
   :func:`read_log_window`;
3. data drift of every input and of the score (``DriftDetector``), with the per-column
   significance level divided among the columns (Bonferroni): ``alpha`` is the chance
   that a clean window raises any column, not each column;
4. realized performance where labels arrived (``performance_window``);
5. alerts: the findings go through the :class:`~shipyard.monitoring.alerts.AlertManager`
   (rules with severity, deduplication, cool-down) and what it decides to send goes to
   the channels;
6. the check is stored (``monitor_checks``), so ``shipyard monitor history`` and
   ``report`` show drift and performance over time.

>>> check = run_check(config, "churn", window=1000)
>>> check.alert, check.drifted_columns
(True, ('number_customer_service_calls', 'score'))
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, DataContractError, NotFoundError
from shipyard.monitoring.log_window import (
    DEFAULT_WINDOW,
    SCORE_COLUMN,
    LogWindow,
    read_log_window,
)

if TYPE_CHECKING:
    from shipyard.core.config import Config
    from shipyard.models.records import ModelVersion
    from shipyard.models.registry import ModelRegistry
    from shipyard.monitoring.alerts import Alert, AlertRule, Finding
    from shipyard.monitoring.channels import Channel
    from shipyard.monitoring.drift_report import DriftReport
    from shipyard.monitoring.performance import PerformanceReport
    from shipyard.monitoring.reference import Reference
    from shipyard.store.metadata import MetadataStore

__all__ = [
    "DEFAULT_WINDOW",
    "SCORE_COLUMN",
    "LogWindow",
    "MonitorCheck",
    "check_history",
    "read_log_window",
    "resolve_served",
    "run_check",
    "training_reference",
]

_ALERTING = ("warning", "critical")


@dataclass(frozen=True, eq=False)
class MonitorCheck:
    """What one check saw and did. ``alert`` is True when a finding met a rule of
    warning or critical severity (whether or not deduplication sent it again)."""

    id: int | None
    model: str
    version: int
    reference: str
    window: str
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    drift: DriftReport | None
    performance: PerformanceReport | None
    findings: tuple[Finding, ...]
    breaches: tuple[tuple[str, Finding], ...]
    """(severity, finding) of every breached finding a rule matched."""
    sent: tuple[Alert, ...]
    """The alerts the manager decided to send now (fired, repeated, escalated...)."""
    notes: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def alert(self) -> bool:
        return any(severity in _ALERTING for severity, _ in self.breaches)

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return self.drift.drifted_columns if self.drift is not None else ()

    @property
    def alert_kinds(self) -> tuple[str, ...]:
        """Kinds of the breached findings at warning or above (``data_drift``...)."""
        return tuple(sorted({f.kind for severity, f in self.breaches if severity in _ALERTING}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "shipyard.monitor_check.v1",
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "reference": self.reference,
            "window": self.window,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "rows": self.rows,
            "alert": self.alert,
            "alert_kinds": list(self.alert_kinds),
            "drifted_columns": list(self.drifted_columns),
            "breaches": [
                {"severity": s, "kind": f.kind, "subject": f.subject, "message": f.message}
                for s, f in self.breaches
            ],
            "sent": [_alert_summary(a) for a in self.sent],
            "notes": list(self.notes),
            "drift": self.drift.to_dict() if self.drift else None,
            "performance": self.performance.to_dict() if self.performance else None,
            "created_at": self.created_at.isoformat(),
        }


def _alert_summary(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "event": alert.event,
        "severity": alert.severity,
        "kind": alert.kind,
        "subject": alert.subject,
    }


# --- Resolving what is served --------------------------------------------------------------


def resolve_served(registry: ModelRegistry, model: str) -> ModelVersion:
    """The version ``model`` names: ``churn@v3`` as is; a bare ``churn`` is its
    ``champion`` (``NotFoundError`` naming the model when it has none)."""
    from shipyard.core.references import parse_reference

    if not isinstance(model, str) or not model.strip():
        raise DataContractError(
            f"model must be a model name or reference such as 'churn', not {model!r}."
        )
    parse_reference(model)
    if "@" in model:
        return registry.get(model)
    try:
        return registry.get(f"{model}@champion")
    except NotFoundError as exc:
        if model not in registry.list_models():
            raise NotFoundError(
                f"Model {model!r} is not registered.",
                hint="List models with `shipyard models list`.",
            ) from exc
        raise NotFoundError(
            f"Model {model!r} has no champion: nothing is served to monitor.",
            hint=f"Promote a version (`shipyard models promote {model}@vN champion`) or "
            f"name one ({model}@v1).",
        ) from exc


def training_reference(
    registry: ModelRegistry, version: ModelVersion, *, allow_pickle: bool = False
) -> tuple[Reference, list[str], list[str]]:
    """The reference of ``version``'s training dataset version, with the model's scores
    on its sample as the ``score`` column; also the compared input names and notes."""
    from shipyard.monitoring.reference import Reference, reference_from_dataset

    if not version.dataset_versions:
        raise DataContractError(
            f"{version.reference} records no training dataset version; there is no "
            "reference to compare its traffic with.",
            hint="Register the model with training_data='dataset@vN' (a versioned dataset).",
        )
    training = version.dataset_versions[0]
    inputs = [spec.name for spec in version.signature.inputs]
    profile = registry.datasets.profile(training)
    profiled = set((profile.get("columns") or {}).keys())
    columns = [name for name in inputs if name in profiled]
    notes: list[str] = []
    if not columns:
        raise DataContractError(
            f"None of the inputs of {version.reference} ({', '.join(inputs[:10])}) is a "
            f"column of its training data {training}.",
            hint="Register the model with the dataset version it was trained on.",
        )
    if len(columns) < len(inputs):
        notes.append(f"inputs not in {training}, not compared: {sorted(set(inputs) - profiled)}")
    reference = reference_from_dataset(training, columns=columns, client=registry.datasets)
    sample = reference.sample
    if sample is None or any(name not in sample.column_names for name in inputs):
        notes.append(f"{training} keeps no sample of every input: the score is not compared.")
        return reference, columns, notes
    try:
        loaded = registry.load(version.reference, allow_pickle=allow_pickle)
        scores = loaded.predict(sample.select(inputs)).scores
    except Exception as exc:  # noqa: BLE001 - the inputs are still compared; say why not the score
        notes.append(f"score not compared: {type(exc).__name__}: {str(exc)[:200]}")
        return reference, columns, notes
    import numpy as np
    import pyarrow as pa

    from shipyard.monitoring.reference import summarize_column

    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        notes.append("score not compared: the model gives several scores per row.")
        return reference, columns, notes
    summary = summarize_column(SCORE_COLUMN, pa.array(values), "numeric", sample_rows=len(values))
    return (
        Reference(
            {**reference.columns, SCORE_COLUMN: summary},
            reference.rows,
            reference.source,
            reference.sample,
        ),
        columns,
        notes,
    )


# --- The check -----------------------------------------------------------------------------


def run_check(
    source: Config | ModelRegistry,
    model: str,
    *,
    window: timedelta | int = DEFAULT_WINDOW,
    until: datetime | None = None,
    arm: str = "champion",
    rules: Sequence[AlertRule] | None = None,
    channels: Sequence[Channel] | None = None,
    alpha: float = 0.05,
    min_rows: int = 30,
    min_labels: int = 30,
    multivariate: bool = False,
    record: bool = True,
    actor: str | None = None,
    allow_pickle: bool = False,
) -> MonitorCheck:
    """Run one check of ``model`` (module doc) and return what it found.

    ``rules`` default to ``alerts.default_rules()``, ``channels`` to a log channel.
    ``alpha`` is the family-wise significance level of the small-sample tests. A window
    with fewer than ``min_rows`` records raises ``DataContractError`` (nothing to judge).
    """
    from shipyard.models.registry import ModelRegistry

    # A registry passed in stays open; one opened here from a project is closed after.
    opened = (
        nullcontext(source) if isinstance(source, ModelRegistry) else ModelRegistry.open(source)
    )
    with opened as registry:
        return _check(
            registry,
            model,
            window,
            until,
            arm,
            rules,
            channels,
            alpha,
            min_rows,
            min_labels,
            multivariate,
            record,
            actor,
            allow_pickle,
        )


def _check(
    registry: ModelRegistry,
    model: str,
    window: timedelta | int,
    until: datetime | None,
    arm: str,
    rules: Sequence[AlertRule] | None,
    channels: Sequence[Channel] | None,
    alpha: float,
    min_rows: int,
    min_labels: int,
    multivariate: bool,
    record: bool,
    actor: str | None,
    allow_pickle: bool,
) -> MonitorCheck:
    from shipyard.monitoring.alerts import AlertManager, drift_findings
    from shipyard.monitoring.channels import LogChannel, dispatch
    from shipyard.monitoring.drift import DriftDetector
    from shipyard.monitoring.windows import window_from_table

    if arm not in ("champion", "canary", "shadow"):
        raise DataContractError(
            f"arm is {arm!r}; expected champion, canary or shadow.",
            hint="The prediction log records these three arms.",
        )
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise DataContractError(f"min_rows must be a positive integer, not {min_rows!r}.")
    manager = AlertManager(registry.stores.metadata, rules)  # rules checked before any work
    version = resolve_served(registry, model)
    reference, columns, notes = training_reference(registry, version, allow_pickle=allow_pickle)
    logged = read_log_window(
        registry.stores.metadata, version, window=window, until=until, arms=(arm,)
    )
    if logged.rows < min_rows:
        raise DataContractError(
            f"The prediction log holds {logged.rows} {arm} record(s) of {version.reference} "
            f"in the window ({logged.label}); a check needs at least {min_rows}.",
            hint="Send traffic first, widen the window, or lower min_rows.",
        )
    compared = len(columns) + (SCORE_COLUMN in reference.columns)
    detector = DriftDetector(
        columns=columns,
        prediction=SCORE_COLUMN if SCORE_COLUMN in reference.columns else None,
        alpha=alpha / max(compared, 1),
    ).fit(reference)
    current = window_from_table(
        logged.drift_table(), logged.label, start=logged.start, end=logged.end
    )
    drift = detector.detect(current, multivariate=multivariate)
    findings = drift_findings(drift, model=version.name)
    performance = _performance(registry, version, logged, arm, min_labels, notes)
    if performance is not None:
        findings.extend(f for f in performance.findings() if f.kind == "performance")
    breaches: list[tuple[str, Finding]] = []
    for finding in findings:
        rule = manager.rule_for(finding)
        if rule is not None:
            breaches.append((rule.severity, finding))
    sent = manager.evaluate(findings)
    targets = list(channels) if channels is not None else [LogChannel()]
    for alert in sent:
        dispatch(alert, targets, manager=manager)
    check = MonitorCheck(
        id=None,
        model=version.name,
        version=version.number,
        reference=reference.source,
        window=logged.label,
        window_start=logged.start,
        window_end=logged.end,
        rows=logged.rows,
        drift=drift,
        performance=performance,
        findings=tuple(findings),
        breaches=tuple(breaches),
        sent=tuple(sent),
        notes=tuple(notes),
    )
    if record:
        check = _store(registry.stores.metadata, check, actor)
    return check


def _performance(
    registry: ModelRegistry,
    version: ModelVersion,
    logged: LogWindow,
    arm: str,
    min_labels: int,
    notes: list[str],
) -> PerformanceReport | None:
    from shipyard.monitoring.performance import performance_window

    if version.signature.task not in ("binary_classification", "regression"):
        notes.append(f"performance not checked: {version.signature.task} model.")
        return None
    if not any(label is not None for label in logged.labels):
        notes.append("performance not checked: no labels have arrived for this window.")
        return None
    start, end = logged.logged_at[0], logged.logged_at[-1] + timedelta(microseconds=1)
    try:
        return performance_window(
            registry,
            version.reference,
            since=start,
            until=end,
            arms=[arm],
            min_labels=min_labels,
        )
    except (ConfigError, DataContractError) as exc:
        notes.append(f"performance not checked: {exc}")
        return None


def _store(metadata: MetadataStore, check: MonitorCheck, actor: str | None) -> MonitorCheck:
    from dataclasses import replace

    from sqlalchemy import insert

    from shipyard.evaluation.report import clean_json
    from shipyard.store.schema.loop import monitor_checks
    from shipyard.tracking.capture import current_user

    values = {
        "model": check.model,
        "version": check.version,
        "reference": check.reference[:256],
        "window": check.window[:128],
        "window_start": check.window_start,
        "window_end": check.window_end,
        "rows": check.rows,
        "alert": check.alert,
        "drifted": list(check.drifted_columns),
        "drift": clean_json(check.drift.to_dict()) if check.drift else None,
        "performance": clean_json(check.performance.to_dict()) if check.performance else None,
        "alerts": [_alert_summary(a) for a in check.sent],
        "actor": (actor or current_user())[:256],
        "created_at": check.created_at,
    }
    with metadata.transaction() as conn:
        key = conn.execute(insert(monitor_checks).values(**values)).inserted_primary_key
    return replace(check, id=int(key[0]) if key else None)


def check_history(
    metadata: MetadataStore,
    *,
    model: str | None = None,
    limit: int = 100,
    with_documents: bool = False,
) -> list[dict[str, Any]]:
    """Stored checks, newest first (optionally of one model); ``with_documents`` adds the
    drift and performance JSON documents."""
    from sqlalchemy import select

    from shipyard.store.schema.loop import monitor_checks

    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise DataContractError(f"limit must be an integer from 1 to 100000, not {limit!r}.")
    table = monitor_checks
    columns = [c for c in table.c if with_documents or c.name not in ("drift", "performance")]
    query = select(*columns).order_by(table.c.id.desc()).limit(limit)
    if model is not None:
        query = query.where(table.c.model == model)
    with metadata.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]
