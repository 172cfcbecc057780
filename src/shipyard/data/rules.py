"""Row-level rules: typed columns, rule flags per row, and the split into good and bad.

Per batch: each column is converted by Arrow if every value converts (``casts``); if the
contract has rules, or some column needs row-by-row conversion, one DuckDB query over the
batch returns the typed columns and one boolean flag per rule. The batch is registered
under positional names (``c0``, ``c1``...: a column name from a file never becomes SQL
text) and rule values travel as bound parameters. Custom SQL checks run on the typed
batch; Python checks are called with it. A row with any flag set is quarantined with
every rule it broke (``quarantine``); the others go on in their canonical types.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError
from shipyard.data.casts import cast_sql, fast_cast, infer_text_types
from shipyard.data.contracts import Column, Contract
from shipyard.data.errors import SourceError
from shipyard.data.quarantine import QuarantineBuilder, RowRule
from shipyard.data.report import Violation
from shipyard.data.types import ColumnType, canonical_type_of, parse_type

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

    from shipyard.data.sources import Scan, SourceBatch

__all__ = ["CheckedBatch", "ColumnPlan", "RowChecker", "infer_text_types", "plan_columns"]


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """One output column: where it comes from, its type, its rules."""

    name: str
    source_index: int | None  # None: an optional declared column the source lacks
    raw_type: pa.DataType
    target: ColumnType
    nullable: bool
    spec: Column | None

    @property
    def sensitive(self) -> bool:
        return self.spec is not None and self.spec.sensitive


@dataclass(slots=True)
class CheckedBatch:
    """A batch after its rules: good rows (canonical), quarantined rows, what failed."""

    good: pa.RecordBatch
    good_rows: np.ndarray[Any, Any]
    quarantine: pa.RecordBatch | None
    counts: dict[tuple[str, str | None], int]
    violations: list[Violation]


def plan_columns(
    scan: Scan, contract: Contract | None, inferred: dict[str, ColumnType] | None
) -> list[ColumnPlan]:
    """The output columns, in source order (then optional declared columns the source
    lacks); ``SourceError`` for a missing required column or a forbidden extra one."""
    import pyarrow as pa

    names = scan.schema.names
    declared = dict(contract.columns) if contract else {}
    missing = [n for n, c in declared.items() if c.required and n not in names]
    if missing:
        close = [
            f"'{name}' looks like '{match[0]}'"
            for name in missing
            if (match := difflib.get_close_matches(name, names, n=1))
        ]
        raise SourceError(
            f"{scan.display} lacks the column(s) {missing} the contract requires (it has {names}).",
            hint=("; ".join(close) + ". " if close else "")
            + "Fix the source, or declare the column with required = false.",
        )
    if contract is not None and not contract.allow_extra_columns:
        extra = [n for n in names if n not in declared]
        if extra:
            raise SourceError(
                f"{scan.display} has columns the contract does not declare: {extra}.",
                hint="Declare them, drop them, or set allow_extra_columns = true.",
            )
    plans: list[ColumnPlan] = []
    for index, field in enumerate(scan.schema):
        spec = declared.get(field.name)
        if spec is not None and spec.type is not None:
            target = parse_type(spec.type)
        elif inferred is not None and field.name in inferred:
            target = inferred[field.name]
        else:
            target = canonical_type_of(field.type, field.name)
        nullable = spec.nullable if spec is not None else True
        plans.append(ColumnPlan(field.name, index, field.type, target, nullable, spec))
    for name, spec in declared.items():
        if name not in names:
            target = parse_type(spec.type or "string")
            plans.append(ColumnPlan(name, None, pa.null(), target, spec.nullable, spec))
    for plan in plans:
        _check_rule_types(plan)
    return plans


def _check_rule_types(plan: ColumnPlan) -> None:
    spec = plan.spec
    if spec is None:
        return
    ordered = plan.target.is_numeric or plan.target.is_temporal or plan.target.is_string
    if (spec.min is not None or spec.max is not None) and not ordered:
        raise DataContractError(
            f"Column {plan.name!r}: min/max need a numeric, date, time or string column; "
            f"it is {plan.target.name}."
        )
    if plan.target.duckdb is None and (spec.allowed is not None or spec.regex is not None):
        raise DataContractError(
            f"Column {plan.name!r}: allowed/regex do not apply to {plan.target.name} columns."
        )


def _column_rules(plan: ColumnPlan, index: int, param: Any) -> list[RowRule]:
    """The SQL rules of one column (``param`` binds a value and returns its $name)."""

    def rule(name: str, condition: str, message: str) -> RowRule:
        return RowRule(name, plan.name, index, message, plan.sensitive, condition)

    rules: list[RowRule] = []
    _, may_fail = cast_sql("c", plan.raw_type, plan.target, plan.name)
    if may_fail and plan.source_index is not None:
        rules.append(
            rule(
                "type",
                "({c} IS NOT NULL AND {t} IS NULL)",
                "column {column} is {value}; expected " + plan.target.name,
            )
        )
    if not plan.nullable:
        rules.append(rule("not_null", "({c} IS NULL)", "column {column} is null; not allowed"))
    spec = plan.spec
    if spec is None:
        return rules
    duck = plan.target.duckdb or "VARCHAR"
    if spec.min is not None:
        rules.append(
            rule(
                "min",
                f"({{t}} < CAST({param(spec.min)} AS {duck}))",
                f"column {{column}} is {{value}}; below the minimum {spec.min!r}",
            )
        )
    if spec.max is not None:
        rules.append(
            rule(
                "max",
                f"({{t}} > CAST({param(spec.max)} AS {duck}))",
                f"column {{column}} is {{value}}; above the maximum {spec.max!r}",
            )
        )
    if spec.allowed is not None:
        allowed = list(spec.allowed)
        shown = ", ".join(repr(v) for v in allowed[:5]) + (", ..." if len(allowed) > 5 else "")
        rules.append(
            rule(
                "allowed",
                f"({{t}} IS NOT NULL AND "
                f"NOT list_contains(CAST({param(allowed)} AS {duck}[]), {{t}}))",
                f"column {{column}} is {{value}}; not one of {shown}",
            )
        )
    if spec.regex is not None:
        rules.append(
            rule(
                "regex",
                f"({{t}} IS NOT NULL AND NOT regexp_full_match(CAST({{t}} AS VARCHAR), "
                f"{param(spec.regex)}))",
                f"column {{column}} is {{value}}; does not match /{spec.regex}/",
            )
        )
    if spec.min_length is not None:
        rules.append(
            rule(
                "min_length",
                f"(length(CAST({{t}} AS VARCHAR)) < {param(spec.min_length)})",
                f"column {{column}} is {{value}}; shorter than {spec.min_length} characters",
            )
        )
    if spec.max_length is not None:
        rules.append(
            rule(
                "max_length",
                f"(length(CAST({{t}} AS VARCHAR)) > {param(spec.max_length)})",
                f"column {{column}} is {{value}}; longer than {spec.max_length} characters",
            )
        )
    return rules


class RowChecker:
    """Applies a contract's row-level rules to batches (see the module docstring)."""

    def __init__(
        self, plans: list[ColumnPlan], contract: Contract | None, con: duckdb.DuckDBPyConnection
    ) -> None:
        import pyarrow as pa

        self._plans = plans
        self._con = con
        self._params: dict[str, Any] = {}
        self._queries: dict[frozenset[int], str] = {}
        rules: list[RowRule] = []
        for index, plan in enumerate(plans):
            rules += _column_rules(plan, index, self._param)
        checks = list(contract.checks) if contract else []
        self._sql_checks = [(len(rules) + k, c) for k, c in enumerate(checks) if c.sql is not None]
        self._function_checks = [
            (len(rules) + k, c) for k, c in enumerate(checks) if c.function is not None
        ]
        rules += [
            RowRule(
                f"check:{c.name}", None, None, f"check {c.name!r} failed", False, None, c.columns
            )
            for c in checks
        ]
        self._rules = rules
        self._sql_rules = [r for r, rule in enumerate(rules) if rule.condition is not None]
        self._always_sql = any(rules[r].rule != "type" for r in self._sql_rules)
        self.output_schema = pa.schema(
            [pa.field(p.name, p.target.arrow, nullable=p.nullable) for p in plans]
        )
        self.type_names = [p.target.name for p in plans]
        sensitive = contract.sensitive_columns if contract else frozenset()
        self._quarantine = QuarantineBuilder(
            [p.name for p in plans], [p.source_index for p in plans], rules, sensitive
        )
        self.quarantine_schema = self._quarantine.schema

    def _param(self, value: Any) -> str:
        name = f"p{len(self._params)}"
        self._params[name] = value
        return f"${name}"

    def _query(self, fallback: frozenset[int]) -> str:
        """The batch query when the columns in ``fallback`` need row-by-row conversion."""
        if fallback not in self._queries:
            typed = []
            for i, plan in enumerate(self._plans):
                expr = cast_sql(f"c{i}", plan.raw_type, plan.target, plan.name)[0]
                typed.append(f"{expr if i in fallback else f'c{i}'} AS t{i}")
            flags = []
            for r in self._sql_rules:
                rule = self._rules[r]
                if rule.rule == "type" and rule.column_index not in fallback:
                    continue
                condition = str(rule.condition).format(
                    t=f"t{rule.column_index}", c=f"c{rule.column_index}"
                )
                flags.append(f"coalesce({condition}, false) AS f{r}")
            outputs = [f"t{i}" for i in range(len(self._plans))] + flags
            self._queries[fallback] = (
                f"SELECT {', '.join(outputs)} FROM (SELECT *, {', '.join(typed)} FROM raw)"  # noqa: S608
            )
        return self._queries[fallback]

    def check(self, batch: SourceBatch, *, violations_left: int) -> CheckedBatch:
        """Split one batch into good rows and quarantined rows."""
        import numpy as np
        import pyarrow as pa

        data = batch.data
        n = data.num_rows
        names = [p.name for p in self._plans]
        flags: dict[int, np.ndarray[Any, Any]] = {}
        if n == 0:
            typed = pa.RecordBatch.from_pylist([], schema=self.output_schema)
        else:
            inputs: list[pa.Array] = []
            fallback: set[int] = set()
            for i, plan in enumerate(self._plans):
                if plan.source_index is None:
                    inputs.append(pa.nulls(n, plan.target.arrow))
                    continue
                raw = data.column(plan.source_index)
                converted = fast_cast(raw, plan.raw_type, plan.target)
                if converted is None:
                    fallback.add(i)
                    inputs.append(raw)
                else:
                    inputs.append(converted)
            if fallback or self._always_sql:
                typed, flags = self._run_sql(inputs, frozenset(fallback), batch.file)
            else:
                typed = pa.RecordBatch.from_arrays(inputs, names=names)
            flags.update(self._custom_flags(typed, batch.file))
        bad_rows = np.zeros(n, dtype=bool)
        counts: dict[tuple[str, str | None], int] = {}
        for r, flag in flags.items():
            total = int(flag.sum())
            if total:
                rule = self._rules[r]
                counts[(rule.rule, rule.column)] = counts.get((rule.rule, rule.column), 0) + total
                bad_rows |= flag
        good = typed.filter(pa.array(~bad_rows)) if bad_rows.any() else typed
        quarantine = None
        violations: list[Violation] = []
        if bad_rows.any() or batch.malformed:
            quarantine, violations = self._quarantine.build(batch, flags, bad_rows, violations_left)
        if batch.malformed:
            counts[("malformed_row", None)] = len(batch.malformed)
        return CheckedBatch(
            self._canonical(good), batch.rows[~bad_rows], quarantine, counts, violations
        )

    def _run_sql(
        self, inputs: list[pa.Array], fallback: frozenset[int], file: str
    ) -> tuple[pa.RecordBatch, dict[int, np.ndarray[Any, Any]]]:
        import pyarrow as pa

        renamed = pa.RecordBatch.from_arrays(inputs, names=[f"c{i}" for i in range(len(inputs))])
        query = self._query(fallback)
        used = {k: v for k, v in self._params.items() if f"${k}" in query}
        self._con.register("raw", renamed)
        try:
            out = self._con.sql(query, params=used or None).to_arrow_table()
        except Exception as exc:
            raise DataContractError(f"Checking the rows of {file} failed: {exc}") from exc
        finally:
            self._con.unregister("raw")
        columns = [out.column(f"t{i}").combine_chunks() for i in range(len(self._plans))]
        typed = pa.RecordBatch.from_arrays(columns, names=[p.name for p in self._plans])
        flags = {
            r: out.column(f"f{r}").to_numpy(zero_copy_only=False).astype(bool)
            for r in self._sql_rules
            if f"f{r}" in out.column_names
        }
        return typed, flags

    def _canonical(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa

        if batch.schema.equals(self.output_schema, check_metadata=False):
            return batch
        try:
            return batch.cast(self.output_schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataContractError(f"Cannot store rows in their declared types: {exc}") from exc

    def _custom_flags(self, typed: pa.RecordBatch, file: str) -> dict[int, np.ndarray[Any, Any]]:
        import numpy as np
        import pyarrow as pa

        flags: dict[int, np.ndarray[Any, Any]] = {}
        if self._sql_checks:
            exprs = ", ".join(
                f"coalesce(NOT ({check.sql}), false) AS g{r}" for r, check in self._sql_checks
            )
            self._con.register("rows", typed)
            try:
                out = self._con.sql(f"SELECT {exprs} FROM rows").to_arrow_table()  # noqa: S608
            except Exception as exc:
                names = ", ".join(repr(c.name) for _, c in self._sql_checks)
                raise DataContractError(
                    f"A SQL check ({names}) cannot run on {file}: {exc}",
                    hint="Fix the expression: it is DuckDB SQL over the row's columns.",
                ) from exc
            finally:
                self._con.unregister("rows")
            for r, _ in self._sql_checks:
                flags[r] = out.column(f"g{r}").to_numpy(zero_copy_only=False).astype(bool)
        for r, check in self._function_checks:
            function = check.function
            if function is None:
                continue
            try:
                result = function(typed)
            except Exception as exc:
                raise DataContractError(
                    f"Check {check.name!r} raised {type(exc).__name__}: {exc}",
                    hint="A function check takes a pyarrow RecordBatch and returns booleans.",
                ) from exc
            if isinstance(result, pa.ChunkedArray):
                result = result.combine_chunks()
            if isinstance(result, pa.Array):
                values = result.fill_null(True).to_numpy(zero_copy_only=False)
            else:
                values = np.asarray(result)
            if values.shape != (typed.num_rows,):
                raise DataContractError(
                    f"Check {check.name!r} returned {values.size} value(s) for "
                    f"{typed.num_rows} rows; it must return one boolean per row."
                )
            flags[r] = ~values.astype(bool)
        return flags
