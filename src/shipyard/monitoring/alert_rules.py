"""Alert rules and findings: what a check saw, and which findings deserve an alert.

``shipyard.monitoring.alerts`` re-exports everything here; see its docstring for how
an :class:`~shipyard.monitoring.alerts.AlertManager` folds findings into alerts.
:func:`drift_findings` turns a drift report into findings; :func:`parse_rules` reads
rules from a config table.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from shipyard.core.errors import ConfigError, DataContractError

if TYPE_CHECKING:
    from shipyard.monitoring.drift_report import DriftReport

__all__ = [
    "SEVERITIES",
    "AlertRule",
    "Finding",
    "Severity",
    "default_rules",
    "drift_findings",
    "parse_duration",
    "parse_rules",
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
_BOUND = re.compile(r"\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")
_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
MAX_TEXT = {"kind": 64, "model": 128, "subject": 256, "rule": 128, "window": 128, "bound": 64}
_RULE_KEYS = ("kind", "severity", "model", "subject", "when", "cooldown", "notify_resolved")


@dataclass(frozen=True)
class Finding:
    """What one check saw about one subject: ``breached`` True when it is a problem.

    ``kind`` names the check (``data_drift``, ``dataset_drift``, ``prediction_drift``,
    ``performance``, ``estimated_performance``...), ``subject`` what it is about (a
    column, a metric), ``value`` the figure and ``bound`` the limit it was held to.
    A finding with ``breached=False`` resolves a firing alert of the same key.
    """

    kind: str
    model: str
    subject: str
    breached: bool
    message: str
    value: float | None = None
    bound: str | None = None
    window: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("kind", "model", "subject"):
            text = getattr(self, name)
            if not isinstance(text, str) or not text.strip():
                raise DataContractError(
                    f"Finding.{name} is {text!r}; expected a non-empty string.",
                    hint="Name the check (kind), the model and the subject of every finding.",
                )
        if self.value is not None and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise DataContractError(
                f"Finding.value for {self.kind}/{self.subject} is {self.value!r}; expected a "
                "number or None."
            )

    @property
    def key(self) -> str:
        """The problem this finding is about: a hash of kind, model and subject."""
        text = "\x1f".join((self.kind, self.model, self.subject))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class AlertRule:
    """Which findings raise an alert, how severe it is, and how often it is re-sent.

    ``kind`` matches the finding's kind exactly; ``model`` and ``subject`` are glob
    patterns (``*``, ``total_*``); ``when`` an optional bound on the finding's value
    (``">= 0.3"``): a finding without a value never meets it. ``cooldown`` is the least
    time between two sends of one alert; ``notify_resolved`` also sends resolutions.
    """

    name: str
    kind: str
    severity: Severity = "warning"
    model: str = "*"
    subject: str = "*"
    when: str | None = None
    cooldown: timedelta = timedelta(hours=1)
    notify_resolved: bool = False

    def __post_init__(self) -> None:
        where = f"Alert rule {self.name!r}"
        if not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_TEXT["rule"]:
            raise ConfigError(
                f"Alert rule name {self.name!r} must be 1 to {MAX_TEXT['rule']} characters."
            )
        if not isinstance(self.kind, str) or not self.kind.strip():
            raise ConfigError(f"{where}: kind must name a finding kind, not {self.kind!r}.")
        if self.severity not in RANK:
            raise ConfigError(
                f"{where}: severity {self.severity!r} is unknown.",
                hint=f"Use one of {', '.join(SEVERITIES)}.",
            )
        for name in ("model", "subject"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{where}: {name} must be a glob pattern such as '*'.")
        if self.when is not None and (
            not isinstance(self.when, str) or not _BOUND.fullmatch(self.when)
        ):
            raise ConfigError(
                f'{where}: when must be a bound such as ">= 0.3", not {self.when!r}.',
                hint="Write an operator (>=, >, <=, <) and a number.",
            )
        if not isinstance(self.cooldown, timedelta) or self.cooldown < timedelta(0):
            raise ConfigError(
                f"{where}: cooldown must be a timedelta of zero or more, not {self.cooldown!r}."
            )
        if not isinstance(self.notify_resolved, bool):
            raise ConfigError(f"{where}: notify_resolved must be true or false.")

    def matches(self, finding: Finding) -> bool:
        """Whether ``finding`` is a problem this rule raises an alert for."""
        if not finding.breached or finding.kind != self.kind:
            return False
        if not fnmatch.fnmatchcase(finding.model, self.model):
            return False
        if not fnmatch.fnmatchcase(finding.subject, self.subject):
            return False
        if self.when is None:
            return True
        if finding.value is None or not math.isfinite(finding.value):
            return False
        match = _BOUND.fullmatch(self.when)
        if match is None:  # checked in __post_init__; kept for a mutated rule
            return False
        return bool(_COMPARE[match.group(1)](finding.value, float(match.group(2))))


def default_rules() -> list[AlertRule]:
    """A sane start: drift warns, dataset drift and missed performance gates are critical."""
    return [
        AlertRule("column_drift", kind="data_drift", severity="warning"),
        AlertRule("prediction_drift", kind="prediction_drift", severity="warning"),
        AlertRule("dataset_drift", kind="dataset_drift", severity="critical"),
        AlertRule("performance", kind="performance", severity="critical"),
        AlertRule("estimated_performance", kind="estimated_performance", severity="warning"),
    ]


def parse_rules(table: Any, *, where: str = "[alerts.rules]") -> list[AlertRule]:
    """Rules from a config table: ``{name: {kind=..., severity=..., cooldown="6h"...}}``.

    ``cooldown`` is a number of seconds or a string such as ``"90s"``, ``"15m"``,
    ``"6h"``, ``"1d"``. Unknown keys and wrong types raise ``ConfigError`` naming them.
    """
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(
            f"{where} must be a table of rules, one per name, not {type(table).__name__}.",
            hint='e.g. drift = { kind = "data_drift", severity = "warning", cooldown = "6h" }',
        )
    rules: list[AlertRule] = []
    for name, spec in table.items():
        at = f"{where} {name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f'{at} must be a table such as {{ kind = "data_drift" }}.')
        unknown = [key for key in spec if key not in _RULE_KEYS]
        if unknown:
            raise ConfigError(
                f"{at}: unknown key {unknown[0]!r}.", hint=f"Keys: {', '.join(_RULE_KEYS)}."
            )
        if "kind" not in spec:
            raise ConfigError(f"{at}: missing 'kind'.", hint='e.g. kind = "data_drift".')
        values = dict(spec)
        if "cooldown" in values:
            values["cooldown"] = parse_duration(values["cooldown"], where=f"{at} cooldown")
        try:
            rules.append(AlertRule(str(name), **values))
        except ConfigError as exc:
            raise ConfigError(f"{at}: {exc.message}", hint=exc.hint) from exc
    return rules


def parse_duration(value: Any, *, where: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"1d"`` or a number of seconds, as a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (
        match := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
    ):
        seconds = float(match.group(1)) * units[match.group(2)]
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= 366 * 86400:
        raise ConfigError(
            f'{where} is {value!r}; expected a duration such as "90s", "15m", "6h" or '
            '"1d" (at most a year).',
        )
    return timedelta(seconds=seconds)


def drift_findings(report: DriftReport, *, model: str) -> list[Finding]:
    """One finding per compared column and one for the dataset, from a drift report.

    Score columns give ``prediction_drift``, label columns ``label_drift``, the others
    ``data_drift``; the dataset's verdict gives ``dataset_drift`` (subject ``dataset``).
    A column that did not drift is a finding too: it resolves that column's alert.
    """
    kinds = {"prediction": "prediction_drift", "label": "label_drift"}
    found: list[Finding] = []
    window = clip(report.window, MAX_TEXT["window"])
    for column in report.columns:
        kind = kinds.get(column.role, "data_drift")
        value = column.statistic if math.isfinite(column.statistic) else None
        found.append(
            Finding(
                kind=kind,
                model=model,
                subject=column.name,
                breached=column.drifted,
                message=(
                    f"{model}: column {column.name!r} drifted in {report.window}: {column.reason}"
                    if column.drifted
                    else f"{model}: column {column.name!r} is stable in {report.window}."
                ),
                value=value,
                bound=f">= {column.threshold:g}" if math.isfinite(column.threshold) else None,
                window=window,
                detail={
                    "method": column.method,
                    "p_value": column.p_value,
                    "reference_values": column.reference_values,
                    "current_values": column.current_values,
                },
            )
        )
    found.append(
        Finding(
            kind="dataset_drift",
            model=model,
            subject="dataset",
            breached=report.dataset_drift,
            message=(
                f"{model}: {len(report.drifted_columns)} of {len(report.columns)} columns "
                f"drifted in {report.window} ({', '.join(report.drifted_columns[:10])})."
                if report.dataset_drift
                else f"{model}: no dataset drift in {report.window}."
            ),
            value=report.share_drifted,
            bound=f">= {report.drift_share:g}",
            window=window,
            detail={"drifted_columns": list(report.drifted_columns)},
        )
    )
    return found


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
