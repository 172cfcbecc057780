"""The quarantine table: every row that broke a row rule, with why and where.

Columns: ``_source_file``, ``_source_row`` (see ``sources``), ``_rule``, ``_column``,
``_value`` and ``_message`` of the row's first failure (the value masked if the column is
sensitive), ``_failures`` (every rule the row broke), then the row's original values as
text, as the source had them. A row the reader could not parse has ``_rule`` =
``malformed_row`` and its raw text as ``_value`` (masked if the contract marks any
column sensitive: the text may hold it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.data.report import MASK, Violation, mask_value

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from shipyard.data.sources import SourceBatch

__all__ = ["QUARANTINE_COLUMNS", "QuarantineBuilder", "RowRule"]

QUARANTINE_COLUMNS = (
    "_source_file",
    "_source_row",
    "_rule",
    "_column",
    "_value",
    "_message",
    "_failures",
)


@dataclass(frozen=True, slots=True)
class RowRule:
    """A row-level rule: ``message`` has ``{column}`` and ``{value}`` placeholders."""

    rule: str
    column: str | None
    column_index: int | None
    message: str
    sensitive: bool
    condition: str | None = None  # SQL over {t} (typed) and {c} (raw); None: a custom check
    check_columns: tuple[str, ...] = ()


def quarantine_schema(columns: Sequence[str]) -> pa.Schema:
    import pyarrow as pa

    failure = pa.struct([("rule", pa.string()), ("column", pa.string()), ("value", pa.string())])
    fields = [
        pa.field("_source_file", pa.string()),
        pa.field("_source_row", pa.int64()),
        pa.field("_rule", pa.string()),
        pa.field("_column", pa.string()),
        pa.field("_value", pa.string()),
        pa.field("_message", pa.string()),
        pa.field("_failures", pa.list_(failure)),
    ]
    taken = set(QUARANTINE_COLUMNS)
    for name in columns:
        shown = name if name not in taken else name + "__original"
        taken.add(shown)
        fields.append(pa.field(shown, pa.string()))
    return pa.schema(fields)


class QuarantineBuilder:
    """Builds quarantine batches and report violations from a batch's rule flags."""

    def __init__(
        self,
        columns: Sequence[str],
        sources: Sequence[int | None],
        rules: Sequence[RowRule],
        sensitive: frozenset[str],
    ) -> None:
        self._columns = list(columns)
        self._sources = list(sources)
        self._rules = list(rules)
        self._sensitive = sensitive
        self.schema = quarantine_schema(columns)

    def build(
        self,
        batch: SourceBatch,
        flags: dict[int, np.ndarray[Any, Any]],
        bad_rows: np.ndarray[Any, Any],
        violations_left: int,
    ) -> tuple[pa.RecordBatch, list[Violation]]:
        import numpy as np
        import pyarrow as pa

        indexes = np.flatnonzero(bad_rows)
        text = [self._column_text(batch.data, source, indexes) for source in self._sources]
        records: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        originals = self.schema.names[len(QUARANTINE_COLUMNS) :]
        violations: list[Violation] = []
        active = [(r, flags[r]) for r in sorted(flags) if flags[r].any()]
        for position, row_index in enumerate(indexes.tolist()):
            failures = []
            for r, flag in active:
                if not flag[row_index]:
                    continue
                rule = self._rules[r]
                if rule.column_index is not None:
                    shown = mask_value(text[rule.column_index][position], rule.sensitive)
                else:
                    shown = self._check_values(rule, text, position)
                message = rule.message.format(
                    column=repr(rule.column), value=repr(shown) if shown is not None else "null"
                )
                failures.append((rule, shown, message))
            first, first_value, first_message = failures[0]
            number = int(batch.rows[row_index])
            self._append(records, batch.file, number, first.rule, first.column, first_value)
            records["_message"].append(first_message)
            records["_failures"].append(
                [{"rule": r.rule, "column": r.column, "value": v} for r, v, _ in failures]
            )
            for k, name in enumerate(originals):
                records[name].append(text[k][position])
            for rule, shown, message in failures:
                if len(violations) < violations_left:
                    violations.append(
                        Violation(rule.rule, rule.column, batch.file, number, shown, message)
                    )
        for malformed in batch.malformed:
            raw = MASK if self._sensitive else mask_value(malformed.text, False)
            self._append(records, malformed.file, malformed.row, "malformed_row", None, raw)
            records["_message"].append(malformed.message)
            records["_failures"].append([{"rule": "malformed_row", "column": None, "value": raw}])
            for name in originals:
                records[name].append(None)
            if len(violations) < violations_left:
                violations.append(
                    Violation(
                        "malformed_row", None, malformed.file, malformed.row, raw, malformed.message
                    )
                )
        return pa.RecordBatch.from_pydict(records, schema=self.schema), violations

    @staticmethod
    def _append(
        records: dict[str, list[Any]],
        file: str,
        row: int | None,
        rule: str,
        column: str | None,
        value: str | None,
    ) -> None:
        records["_source_file"].append(file)
        records["_source_row"].append(row)
        records["_rule"].append(rule)
        records["_column"].append(column)
        records["_value"].append(value)

    def _check_values(
        self, rule: RowRule, text: list[list[str | None]], position: int
    ) -> str | None:
        parts = []
        for column in rule.check_columns:
            if column in self._columns:
                value = text[self._columns.index(column)][position]
                shown = mask_value(value, column in self._sensitive)
                parts.append(f"{column}={shown if shown is not None else 'null'}")
        return ", ".join(parts) if parts else None

    @staticmethod
    def _column_text(
        raw: pa.RecordBatch, source: int | None, indexes: np.ndarray[Any, Any]
    ) -> list[str | None]:
        """The failing rows' values of one column as text, as the source had them."""
        import pyarrow as pa

        if source is None:
            return [None] * len(indexes)
        column = raw.column(source).take(pa.array(indexes))
        try:
            values: list[str | None] = column.cast(pa.string()).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = [
                None if v is None else json.dumps(v, default=str, sort_keys=True)
                for v in column.to_pylist()
            ]
        return values
