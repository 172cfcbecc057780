"""The contract report: what every rule found, row by row and for the whole dataset.

Row-level failures name the file, row, column, value and rule (values of sensitive
columns masked); each failing row is also in the version's quarantine table. The report
keeps every rule's count and the first ``MAX_VIOLATIONS`` failures; the quarantine keeps
them all.

>>> report.passed
False
>>> [str(v) for v in report.violations[:1]]
["credit_data.csv row 31: column 'Home' is null; not allowed [not_null]"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MASK",
    "MAX_VIOLATIONS",
    "ContractReport",
    "RuleCount",
    "RuleResult",
    "Violation",
    "mask_value",
]

MASK = "***"
"""What a sensitive column's value shows as, in reports and the quarantine's ``_value``."""
MAX_VIOLATIONS = 1000
"""Row-level failures a report lists (the quarantine table holds every one)."""
MAX_VALUE_CHARS = 200
"""A value longer than this is cut in reports and in ``_value`` (with a marker)."""


def mask_value(value: str | None, sensitive: bool) -> str | None:
    """A value as a report shows it: masked if sensitive, cut if very long."""
    if value is None:
        return None
    if sensitive:
        return MASK
    if len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + f"...(+{len(value) - MAX_VALUE_CHARS} chars)"
    return value


@dataclass(frozen=True, slots=True)
class Violation:
    """One row that broke one rule."""

    rule: str
    column: str | None
    file: str | None
    row: int | None
    value: str | None
    message: str

    def __str__(self) -> str:
        place = self.file or "input"
        if self.row is not None:
            place += f" row {self.row}"
        return f"{place}: {self.message} [{self.rule}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "file": self.file,
            "row": self.row,
            "value": self.value,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class RuleCount:
    """How many rows broke one row-level rule on one column."""

    rule: str
    column: str | None
    count: int


@dataclass(frozen=True, slots=True)
class RuleResult:
    """The outcome of one dataset-level rule."""

    rule: str
    severity: str
    passed: bool
    detail: str
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "passed": self.passed,
            "detail": self.detail,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class ContractReport:
    """What checking one ingestion against its contract found."""

    source: str
    rows_read: int
    rows_passed: int
    rows_quarantined: int
    rule_counts: tuple[RuleCount, ...] = ()
    violations: tuple[Violation, ...] = ()
    dataset_rules: tuple[RuleResult, ...] = ()
    content_id: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def errors(self) -> tuple[RuleResult, ...]:
        """Dataset-level rules of severity error that failed: each stops the version."""
        return tuple(r for r in self.dataset_rules if not r.passed and r.severity == "error")

    @property
    def warnings(self) -> tuple[RuleResult, ...]:
        """Dataset-level rules of severity warn that failed: recorded, not blocking."""
        return tuple(r for r in self.dataset_rules if not r.passed and r.severity != "error")

    @property
    def passed(self) -> bool:
        """Whether the data may become a version (no error-severity rule failed)."""
        return not self.errors

    @property
    def quarantined_fraction(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0

    def summary(self) -> str:
        """One line: rows read, passed, quarantined; rules failed."""
        text = (
            f"{self.rows_read:,} rows read, {self.rows_passed:,} passed, "
            f"{self.rows_quarantined:,} quarantined"
        )
        if self.errors:
            text += f"; {len(self.errors)} error(s): " + ", ".join(r.rule for r in self.errors)
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s): " + ", ".join(
                r.rule for r in self.warnings
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "passed": self.passed,
            "rows_read": self.rows_read,
            "rows_passed": self.rows_passed,
            "rows_quarantined": self.rows_quarantined,
            "content_id": self.content_id,
            "rule_counts": [
                {"rule": c.rule, "column": c.column, "count": c.count} for c in self.rule_counts
            ],
            "violations": [v.to_dict() for v in self.violations],
            "dataset_rules": [r.to_dict() for r in self.dataset_rules],
            "notes": list(self.notes),
        }

    def summary_dict(self) -> dict[str, Any]:
        """``to_dict`` without the listed violations: what a version row keeps."""
        out = self.to_dict()
        out.pop("violations")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContractReport:
        return cls(
            source=str(data.get("source", "")),
            rows_read=int(data.get("rows_read", 0)),
            rows_passed=int(data.get("rows_passed", 0)),
            rows_quarantined=int(data.get("rows_quarantined", 0)),
            rule_counts=tuple(
                RuleCount(c["rule"], c.get("column"), int(c["count"]))
                for c in data.get("rule_counts", [])
            ),
            violations=tuple(
                Violation(
                    v["rule"],
                    v.get("column"),
                    v.get("file"),
                    v.get("row"),
                    v.get("value"),
                    v.get("message", ""),
                )
                for v in data.get("violations", [])
            ),
            dataset_rules=tuple(
                RuleResult(
                    r["rule"],
                    r["severity"],
                    bool(r["passed"]),
                    r.get("detail", ""),
                    tuple(r.get("examples", ())),
                )
                for r in data.get("dataset_rules", [])
            ),
            content_id=data.get("content_id"),
            notes=tuple(data.get("notes", ())),
        )
