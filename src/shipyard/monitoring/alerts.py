"""Alerts: rules with severities turn findings into alerts, deduplicated, with a cool-down.

A *finding* is what one check saw about one subject (a drifted column, a metric below
its gate). :class:`AlertRule` says which findings deserve an alert and how severe it is;
:class:`AlertManager` keeps one alert per problem in the metadata store (tables in
``store/schema/alerts.py``) and decides what to send::

    >>> manager = AlertManager(stores.metadata, [
    ...     AlertRule("drift", kind="data_drift", severity="warning"),
    ...     AlertRule("drift_big", kind="data_drift", severity="critical",
    ...               when=">= 0.3"),                       # the statistic's size
    ...     AlertRule("performance", kind="performance", severity="critical",
    ...               cooldown=timedelta(hours=6)),
    ... ])
    >>> fired = manager.evaluate(drift_findings(report, model="churn"))
    >>> for alert in fired:
    ...     dispatch(alert, channels, manager=manager)   # shipyard.monitoring.channels

A problem is identified by its key: the finding's kind, model and subject. Among the
rules matching a finding, the most severe wins. Then, per key:

- no alert firing: a new alert fires (``event="fired"``);
- an alert firing, same or lower severity: it is updated (``count``, ``last_seen``) and
  *not* sent again (deduplication) until its rule's ``cooldown`` has passed since it was
  last sent (``event="repeated"``);
- an alert firing, higher severity: it is raised and sent at once (``event="escalated"``);
- a finding for the key that is not breached (the check ran and found nothing): the
  alert is resolved, and sent if its rule says ``notify_resolved``.

The state lives in the store, so a monitor that restarts, or two monitors on one store,
agree on what was already sent (evaluations of one store are serialised).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from shipyard.core.errors import BackendError, ConfigError, DataContractError, NotFoundError
from shipyard.monitoring.alert_rules import (
    MAX_TEXT,
    RANK,
    SEVERITIES,
    AlertRule,
    Finding,
    Severity,
    clip,
    default_rules,
    drift_findings,
    parse_duration,
    parse_rules,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, RowMapping

    from shipyard.store.metadata import MetadataStore

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertManager",
    "AlertRule",
    "Finding",
    "default_rules",
    "drift_findings",
    "parse_duration",
    "parse_rules",
]

AlertEvent = Literal["fired", "repeated", "escalated", "resolved"]
_MAX_MESSAGE = 4000
_ALERT_LOCK_KEY = 0x414C45525453  # b"ALERTS": serialises evaluations on PostgreSQL


@dataclass(frozen=True)
class Alert:
    """One alert as stored, and ``event``: why it is being sent now."""

    id: int
    key: str
    rule: str
    severity: Severity
    kind: str
    model: str
    subject: str
    status: Literal["firing", "resolved"]
    message: str
    value: float | None
    bound: str | None
    window: str | None
    detail: Mapping[str, Any]
    first_seen: datetime
    last_seen: datetime
    fired_at: datetime
    resolved_at: datetime | None
    count: int
    notifications: int
    event: AlertEvent = "fired"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document: what channels send (``shipyard.alert.v1``)."""
        return {
            "format": "shipyard.alert.v1",
            "id": self.id,
            "event": self.event,
            "severity": self.severity,
            "status": self.status,
            "rule": self.rule,
            "kind": self.kind,
            "model": self.model,
            "subject": self.subject,
            "message": self.message,
            "value": self.value if self.value is None or math.isfinite(self.value) else None,
            "bound": self.bound,
            "window": self.window,
            "detail": dict(self.detail),
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "count": self.count,
            "notifications": self.notifications,
            "key": self.key,
        }


class AlertManager:
    """Keeps alerts in the metadata store and decides which ones to send (module doc)."""

    def __init__(self, metadata: MetadataStore, rules: Sequence[AlertRule] | None = None) -> None:
        chosen = list(default_rules() if rules is None else rules)
        for rule in chosen:
            if not isinstance(rule, AlertRule):
                raise ConfigError(
                    f"AlertManager rules must be AlertRule objects, got {type(rule).__name__}."
                )
        names = [rule.name for rule in chosen]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(f"Alert rule {repeated[0]!r} is declared twice.")
        self.metadata = metadata
        self.rules = tuple(chosen)
        self._by_name = {rule.name: rule for rule in chosen}

    def rule_for(self, finding: Finding) -> AlertRule | None:
        """The most severe rule matching ``finding`` (the first declared among equals)."""
        best: AlertRule | None = None
        for rule in self.rules:
            if rule.matches(finding) and (
                best is None or RANK[rule.severity] > RANK[best.severity]
            ):
                best = rule
        return best

    def evaluate(self, findings: Iterable[Finding], *, now: datetime | None = None) -> list[Alert]:
        """Fold ``findings`` into the stored alerts; return the alerts to send now.

        Each returned alert carries its ``event``: fired, repeated (the cool-down has
        passed), escalated (more severe than when last sent) or resolved.
        """
        moment = _utc(now)
        matched: dict[str, tuple[AlertRule, Finding]] = {}
        clear: dict[str, Finding] = {}
        for finding in findings:
            if not isinstance(finding, Finding):
                raise DataContractError(
                    f"AlertManager.evaluate takes Finding objects, got {type(finding).__name__}."
                )
            rule = self.rule_for(finding)
            key = finding.key
            if rule is None:
                if not finding.breached:
                    clear.setdefault(key, finding)
                continue
            held = matched.get(key)
            if held is None or RANK[rule.severity] > RANK[held[0].severity]:
                matched[key] = (rule, finding)
        clear = {key: finding for key, finding in clear.items() if key not in matched}
        if not matched and not clear:
            return []
        out: list[Alert] = []
        with self.metadata.transaction() as conn:
            self._lock(conn)
            open_rows = self._open(conn, [*matched, *clear])
            for key, (rule, finding) in matched.items():
                row = open_rows.get(key)
                alert = (
                    self._insert(conn, rule, finding, moment)
                    if row is None
                    else self._update(conn, row, rule, finding, moment)
                )
                if alert is not None:
                    out.append(alert)
            for key, finding in clear.items():
                row = open_rows.get(key)
                if row is None:
                    continue
                resolved = self._resolve(conn, row, finding, moment)
                owner = self._by_name.get(str(row["rule"]))
                if owner is not None and owner.notify_resolved:
                    out.append(resolved)
        return out

    def alerts(
        self,
        *,
        model: str | None = None,
        status: Literal["firing", "resolved"] | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Stored alerts, newest first, optionally of one model and status."""
        from sqlalchemy import select

        from shipyard.store.schema.alerts import alerts

        if status not in (None, "firing", "resolved"):
            raise DataContractError(
                f"Alert status {status!r} is unknown.", hint="Use 'firing' or 'resolved'."
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise DataContractError(f"limit must be an integer from 1 to 100000, not {limit!r}.")
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(alerts.c.model == model)
        if status is not None:
            query = query.where(alerts.c.status == status)
        with self.metadata.connect() as conn:
            return [_alert(row) for row in conn.execute(query).mappings()]

    def get(self, alert_id: int) -> Alert:
        """One stored alert (``NotFoundError`` naming the id)."""
        from sqlalchemy import select

        from shipyard.store.schema.alerts import alerts

        with self.metadata.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        if row is None:
            raise NotFoundError(
                f"Alert {alert_id!r} does not exist.",
                hint="List alerts with AlertManager.alerts().",
            )
        return _alert(row)

    def resolve(self, alert_id: int, *, reason: str = "resolved by hand") -> Alert:
        """Resolve a firing alert now (someone fixed it); a later breach fires anew."""
        from sqlalchemy import select

        from shipyard.store.schema.alerts import alerts

        with self.metadata.transaction() as conn:
            self._lock(conn)
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"Alert {alert_id!r} does not exist.")
            if row["status"] == "resolved":
                return _alert(row)
            finding = Finding(
                str(row["kind"]), str(row["model"]), str(row["subject"]), False, reason
            )
            return self._resolve(conn, row, finding, _utc(None))

    def record_deliveries(self, alert: Alert, deliveries: Iterable[Any]) -> None:
        """Store what sending ``alert`` did on each channel (``channels.Delivery``)."""
        from sqlalchemy import insert

        from shipyard.store.schema.alerts import alert_deliveries

        rows = [
            {
                "alert_id": alert.id,
                "event": alert.event,
                "channel": clip(str(delivery.channel), 128),
                "ok": bool(delivery.ok),
                "attempts": int(delivery.attempts),
                "error": clip(delivery.error, 4000) if delivery.error else None,
                "elapsed_ms": float(delivery.elapsed_ms),
                "at": delivery.at,
            }
            for delivery in deliveries
        ]
        if rows:
            with self.metadata.transaction() as conn:
                conn.execute(insert(alert_deliveries), rows)

    def deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        """Every recorded send of one alert, oldest first."""
        from sqlalchemy import select

        from shipyard.store.schema.alerts import alert_deliveries

        query = (
            select(alert_deliveries)
            .where(alert_deliveries.c.alert_id == alert_id)
            .order_by(alert_deliveries.c.id)
        )
        with self.metadata.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # --- Internals -----------------------------------------------------------------------

    def _lock(self, conn: Connection) -> None:
        # SQLite write transactions already queue (BEGIN IMMEDIATE); PostgreSQL's do not,
        # and two monitors reading "no alert open" at once would both insert one.
        if self.metadata.dialect == "postgresql":
            from sqlalchemy import func, select

            conn.execute(select(func.pg_advisory_xact_lock(_ALERT_LOCK_KEY)))

    def _open(self, conn: Connection, keys: list[str]) -> dict[str, RowMapping]:
        from sqlalchemy import select

        from shipyard.store.schema.alerts import alerts

        found: dict[str, RowMapping] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = select(alerts).where(alerts.c.key.in_(chunk), alerts.c.status == "firing")
            for row in conn.execute(query).mappings():
                found[str(row["key"])] = row
        return found

    def _insert(
        self, conn: Connection, rule: AlertRule, finding: Finding, moment: datetime
    ) -> Alert:
        from sqlalchemy import insert

        from shipyard.store.schema.alerts import alerts

        values = {
            "key": finding.key,
            "rule": rule.name,
            "severity": rule.severity,
            "status": "firing",
            "first_seen": moment,
            "last_seen": moment,
            "fired_at": moment,
            "resolved_at": None,
            "count": 1,
            "notifications": 1,
            **_finding_columns(finding),
        }
        result = conn.execute(insert(alerts).values(**values))
        key = result.inserted_primary_key
        if key is None:
            raise BackendError(f"Metadata store {self.metadata.display_uri} returned no alert id.")
        return _alert({"id": int(key[0]), **values}, "fired")

    def _update(
        self,
        conn: Connection,
        row: RowMapping,
        rule: AlertRule,
        finding: Finding,
        moment: datetime,
    ) -> Alert | None:
        from sqlalchemy import update

        from shipyard.store.schema.alerts import alerts

        previous = str(row["severity"])
        event: AlertEvent | None = None
        if RANK[rule.severity] > RANK.get(previous, 0):
            event = "escalated"
        elif moment - row["fired_at"] >= rule.cooldown:
            event = "repeated"
        values: dict[str, Any] = {
            "last_seen": moment,
            "count": int(row["count"]) + 1,
            **_finding_columns(finding),
        }
        if event is not None:
            values.update(
                fired_at=moment,
                notifications=int(row["notifications"]) + 1,
                rule=rule.name,
                severity=rule.severity,
            )
        elif RANK[rule.severity] < RANK.get(previous, 0):
            # A milder finding of a problem already sent as severe keeps the severity it
            # was sent with: the alert calms down by resolving, not by a quiet downgrade.
            values.pop("message")
        conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(**values))
        if event is None:
            return None
        return _alert({**dict(row), **values}, event)

    def _resolve(
        self, conn: Connection, row: RowMapping, finding: Finding, moment: datetime
    ) -> Alert:
        from sqlalchemy import update

        from shipyard.store.schema.alerts import alerts

        values = {
            "status": "resolved",
            "resolved_at": moment,
            "last_seen": moment,
            "message": clip(finding.message, _MAX_MESSAGE),
        }
        conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(**values))
        return _alert({**dict(row), **values}, "resolved")


def _finding_columns(finding: Finding) -> dict[str, Any]:
    from shipyard.models.serialize import json_value

    value = finding.value
    return {
        "kind": clip(finding.kind, MAX_TEXT["kind"]),
        "model": clip(finding.model, MAX_TEXT["model"]),
        "subject": clip(finding.subject, MAX_TEXT["subject"]),
        "message": clip(finding.message, _MAX_MESSAGE),
        "value": float(value) if value is not None and math.isfinite(value) else None,
        "bound": clip(finding.bound, MAX_TEXT["bound"]) if finding.bound else None,
        "window": clip(finding.window, MAX_TEXT["window"]) if finding.window else None,
        "detail": json_value(dict(finding.detail), where=f"finding {finding.subject!r} detail"),
    }


def _alert(row: Any, event: AlertEvent | None = None) -> Alert:
    status = str(row["status"])
    return Alert(
        id=int(row["id"]),
        key=str(row["key"]),
        rule=str(row["rule"]),
        severity=row["severity"],
        kind=str(row["kind"]),
        model=str(row["model"]),
        subject=str(row["subject"]),
        status="resolved" if status == "resolved" else "firing",
        message=str(row["message"]),
        value=row["value"],
        bound=row["bound"],
        window=row["window"],
        detail=dict(row["detail"] or {}),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        fired_at=row["fired_at"],
        resolved_at=row["resolved_at"],
        count=int(row["count"]),
        notifications=int(row["notifications"]),
        event=event or ("resolved" if status == "resolved" else "fired"),
    )


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        raise DataContractError(
            f"Time {moment.isoformat()} has no time zone.", hint="Pass an aware UTC datetime."
        )
    return moment.astimezone(UTC)
