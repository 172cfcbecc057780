"""Ingestion: read a source, apply its contract, and produce what a version is made of.

One streaming pass (two for CSV columns whose types are inferred, plus a rerun when a
parallel CSV read meets malformed rows) does everything per batch: rules and quarantine,
the canonical content hash, the Parquet parts, the random sample and the quantile
sketches. Then DuckDB computes the dataset-level rules and the profile over the written
parts. Memory is bounded by the batch size and DuckDB's cap, not by the data.

Nothing here touches the stores: ``Evaluation`` lists local files, and the client
decides whether they become a version (``ingest``) or are discarded (``check``).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError, IntegrityError
from shipyard.data.canonical import TableHasher, schema_json
from shipyard.data.contracts import Contract
from shipyard.data.profile import QuantileSketches, Sampler, compute_profile
from shipyard.data.report import (
    MAX_VIOLATIONS,
    ContractReport,
    RuleCount,
    RuleResult,
    Violation,
    mask_value,
)
from shipyard.data.rules import ColumnPlan, RowChecker, infer_text_types, plan_columns
from shipyard.data.sources import Scan
from shipyard.data.sources_memory import CanonicalTable
from shipyard.data.sources_text import RestartPass

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["PART_ROWS", "Evaluation", "StageProgress", "evaluate"]

PART_ROWS = 2_000_000
"""Rows per stored Parquet part; a large table is several parts (streamed, not held)."""
ROW_GROUP_ROWS = 131_072

StageProgress = Callable[[str, int, int | None], None]
"""Called with (stage, done, total or None): stages ``infer``, ``read``, ``profile``."""


@dataclass
class Evaluation:
    """Everything one ingestion produced, as local files and in-memory summaries."""

    report: ContractReport
    content_id: str
    schema: list[dict[str, Any]]
    arrow_schema: pa.Schema
    parts: list[tuple[Path, int]]
    quarantine: Path | None
    sample: pa.Table
    sketches: QuantileSketches
    lineage: dict[str, Any]
    inputs: list[Any]
    type_names: list[str]
    workdir: Path
    profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def compute_profile(
        self, con: duckdb.DuckDBPyConnection, sensitive: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        if self.profile is None:
            self.profile = compute_profile(
                con,
                [path for path, _ in self.parts],
                self.arrow_schema,
                self.type_names,
                self.sketches,
                self.report.rows_passed,
                sensitive,
            )
        return self.profile


class _PartWriter:
    """Good rows into Parquet parts of at most ``PART_ROWS`` rows (always at least one)."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self._folder = folder
        self._schema = schema
        self._writer: pq.ParquetWriter | None = None
        self.parts: list[tuple[Path, int]] = []

    def _open(self) -> None:
        import pyarrow.parquet as pq

        path = self._folder / f"part-{len(self.parts):05d}.parquet"
        self._writer = pq.ParquetWriter(
            path, self._schema, compression="zstd", use_dictionary=_dictionary_columns(self._schema)
        )
        self.parts.append((path, 0))

    def write(self, batch: pa.RecordBatch) -> None:
        offset = 0
        while offset < batch.num_rows:
            if self._writer is None or self.parts[-1][1] >= PART_ROWS:
                self.close_part()
                self._open()
            if self._writer is None:
                raise RuntimeError("the part writer is closed")
            path, rows = self.parts[-1]
            take = min(batch.num_rows - offset, PART_ROWS - rows)
            self._writer.write_batch(batch.slice(offset, take), row_group_size=ROW_GROUP_ROWS)
            self.parts[-1] = (path, rows + take)
            offset += take

    def close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self) -> list[tuple[Path, int]]:
        if not self.parts:
            self._open()
        self.close_part()
        return self.parts


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: all but floating point ones.

    Float features are mostly distinct values: the writer builds a dictionary, finds it
    too large and falls back to plain encoding, which costs about twice the whole write
    (measured on 100,000 x 10 float64) and makes the file larger.
    """
    import pyarrow.types as t

    return [field.name for field in schema if not t.is_floating(field.type)]


class _SideWriter:
    """A Parquet file of some columns plus each row's file and row number."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        full = schema.append(pa.field("__file", pa.string())).append(pa.field("__row", pa.int64()))
        self._schema = full
        self._writer = pq.ParquetWriter(path, full, compression="zstd")

    def write(self, batch: pa.RecordBatch, file: str, rows: Any) -> None:
        import pyarrow as pa

        if batch.num_rows == 0:
            return
        columns = [
            *batch.columns,
            pa.array([file] * batch.num_rows, pa.string()),
            pa.array(rows, pa.int64()),
        ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def evaluate(
    scan: Scan,
    contract: Contract | None,
    con: duckdb.DuckDBPyConnection,
    workdir: Path,
    progress: StageProgress | None = None,
) -> Evaluation:
    """Read ``scan`` through ``contract``; write parts and quarantine under ``workdir``."""
    inferred = None
    if scan.text:
        declared = contract.columns if contract else {}
        undeclared = [n for n in scan.schema.names if n not in declared or declared[n].type is None]
        if undeclared:
            scan.inferring = True
            scan.progress = (
                (lambda done, total: progress("infer", done, total)) if progress else None
            )
            try:
                inferred = infer_text_types(scan, undeclared)
            finally:
                scan.inferring = False
    plans = plan_columns(scan, contract, inferred)
    _check_freshness_column(plans, contract)
    checker = RowChecker(plans, contract, con)
    scan.progress = (lambda done, total: progress("read", done, total)) if progress else None
    for attempt in range(3):
        folder = workdir / f"pass-{attempt}"
        folder.mkdir(parents=True)
        try:
            return _run_pass(scan, contract, checker, plans, con, folder)
        except RestartPass:
            shutil.rmtree(folder, ignore_errors=True)
            if attempt == 2 or not scan.rewindable:
                raise DataContractError(f"{scan.display} could not be read consistently.") from None
    raise AssertionError("unreachable")


def _known_content_id(
    scan: Scan, contract: Contract | None, checker: RowChecker
) -> tuple[str, int] | None:
    """The content id and row count of rows already hashed (a ``CanonicalTable``), when
    the checker passes them through unchanged: no contract, and the rows already in
    the output schema and types. Otherwise None, and the pass hashes the rows."""
    known = getattr(scan, "known", None)
    if not isinstance(known, CanonicalTable) or contract is not None:
        return None
    if not checker.output_schema.equals(known.table.schema, check_metadata=False):
        return None
    if list(known.type_names) != list(checker.type_names):
        return None
    return known.content_id, known.table.num_rows


def _check_freshness_column(plans: list[ColumnPlan], contract: Contract | None) -> None:
    if contract is None or contract.freshness is None:
        return
    column = contract.freshness.column
    plan = next((p for p in plans if p.name == column), None)
    if plan is None:
        raise DataContractError(
            f"The freshness rule names column {column!r}, which the data lacks."
        )
    if plan.target.name not in ("date", "timestamp", "timestamp_tz", "timestamp_ns"):
        raise DataContractError(
            f"The freshness rule needs a date or timestamp column; "
            f"{column!r} is {plan.target.name}.",
            hint=f'Declare its type: [columns.{column}] type = "timestamp".',
        )


def _run_pass(
    scan: Scan,
    contract: Contract | None,
    checker: RowChecker,
    plans: list[ColumnPlan],
    con: duckdb.DuckDBPyConnection,
    folder: Path,
) -> Evaluation:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = checker.output_schema
    known = _known_content_id(scan, contract, checker)
    hasher = None if known is not None else TableHasher(schema, checker.type_names)
    sampler = Sampler(schema)
    sketches = QuantileSketches(schema.names, checker.type_names)
    parts = _PartWriter(folder, schema)
    quarantine_writer: pq.ParquetWriter | None = None
    quarantine_path = folder / "quarantine.parquet"
    uniques = contract.uniques if contract else ()
    key_columns = list(dict.fromkeys(c for rule in uniques for c in rule.columns))
    missing_keys = [c for c in key_columns if c not in schema.names]
    if missing_keys:
        raise DataContractError(f"The uniqueness rule names columns {missing_keys} the data lacks.")
    side = None
    if key_columns:
        key_schema = pa.schema(
            [pa.field(f"k{i}", schema.field(c).type) for i, c in enumerate(key_columns)]
        )
        side = _SideWriter(folder / "keys.parquet", key_schema)
    fresh_column = contract.freshness.column if contract and contract.freshness else None
    newest: Any = None
    counts: Counter[tuple[str, str | None]] = Counter()
    violations: list[Violation] = []
    rows_read = rows_passed = quarantined = 0
    try:
        for batch in scan.batches():
            rows_read += batch.data.num_rows + len(batch.malformed)
            checked = checker.check(batch, violations_left=MAX_VIOLATIONS - len(violations))
            good = checked.good
            if good.num_rows:
                if hasher is not None:
                    hasher.update(good)
                sampler.update(good)
                sketches.update(good)
                parts.write(good)
                rows_passed += good.num_rows
                if side is not None:
                    keys = good.select(key_columns)
                    side.write(
                        pa.RecordBatch.from_arrays(
                            keys.columns, names=[f"k{i}" for i in range(len(key_columns))]
                        ),
                        batch.file,
                        checked.good_rows,
                    )
                if fresh_column is not None:
                    value = pc.max(good.column(fresh_column)).as_py()
                    if value is not None and (newest is None or value > newest):
                        newest = value
            if checked.quarantine is not None and checked.quarantine.num_rows:
                if quarantine_writer is None:
                    quarantine_writer = pq.ParquetWriter(
                        quarantine_path, checker.quarantine_schema, compression="zstd"
                    )
                quarantine_writer.write_batch(checked.quarantine)
                quarantined += checked.quarantine.num_rows
            counts.update(checked.counts)
            violations.extend(checked.violations)
    finally:
        if quarantine_writer is not None:
            quarantine_writer.close()
        if side is not None:
            side.close()
    part_files = parts.finish()
    lineage = scan.lineage()
    rule_counts = tuple(
        RuleCount(rule, column, count)
        for (rule, column), count in sorted(
            counts.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] or "")
        )
    )
    partial = ContractReport(
        source=scan.display,
        rows_read=rows_read,
        rows_passed=rows_passed,
        rows_quarantined=quarantined,
        rule_counts=rule_counts,
        violations=tuple(violations),
    )
    rules = _dataset_rules(
        contract, partial, con, part_files, side.path if side else None, key_columns, newest
    )
    if hasher is not None:
        content_id = str(hasher.content_id())
    elif known is not None and (rows_passed, quarantined) == (known[1], 0):
        content_id = known[0]
    else:
        raise IntegrityError(
            f"{scan.display}: {rows_passed:,} rows passed and {quarantined:,} were "
            f"quarantined, but its content id was computed over {known[1] if known else 0:,} "
            "rows; no version was created.",
            hint="Ingest the table itself (a TableSource) rather than a CanonicalTable.",
        )
    report = ContractReport(
        source=scan.display,
        rows_read=rows_read,
        rows_passed=rows_passed,
        rows_quarantined=quarantined,
        rule_counts=rule_counts,
        violations=tuple(violations),
        dataset_rules=tuple(rules),
        content_id=content_id,
    )
    return Evaluation(
        report=report,
        content_id=content_id,
        schema=schema_json(schema, checker.type_names),
        arrow_schema=schema,
        parts=part_files,
        quarantine=quarantine_path if quarantined else None,
        sample=sampler.result(),
        sketches=sketches,
        lineage=lineage,
        inputs=scan.inputs(),
        type_names=checker.type_names,
        workdir=folder,
    )


def _dataset_rules(
    contract: Contract | None,
    report: ContractReport,
    con: duckdb.DuckDBPyConnection,
    parts: list[tuple[Path, int]],
    keys: Path | None,
    key_columns: list[str],
    newest: Any,
) -> list[RuleResult]:
    results: list[RuleResult] = []
    if report.rows_read and not report.rows_passed and report.rows_quarantined:
        results.append(
            RuleResult(
                "rows_passed",
                "error",
                False,
                f"every one of the {report.rows_read:,} rows was quarantined",
                tuple(str(v) for v in report.violations[:3]),
            )
        )
    if contract is None:
        return results
    if (rule := contract.row_count_rule) is not None:
        low, high = rule.min, rule.max
        count = report.rows_passed
        ok = (low is None or count >= low) and (high is None or count <= high)
        bounds = f"[{low if low is not None else 0}, {high if high is not None else 'inf'}]"
        results.append(
            RuleResult("row_count", rule.severity, ok, f"{count:,} rows; expected {bounds}")
        )
    if (limit := contract.quarantine_limit) is not None:
        fraction = report.quarantined_fraction
        results.append(
            RuleResult(
                "max_quarantine_fraction",
                limit.severity,
                fraction <= limit.max_fraction,
                f"{report.rows_quarantined:,} of {report.rows_read:,} rows quarantined "
                f"({fraction:.2%}); at most {limit.max_fraction:.2%} allowed",
            )
        )
    sensitive = contract.sensitive_columns
    if keys is not None:
        results.extend(
            _unique_rule(con, keys, key_columns, rule.columns, rule.severity, sensitive)
            for rule in contract.uniques
        )
    if contract.freshness is not None:
        rule_f = contract.freshness
        now = datetime.now(UTC)
        if newest is None:
            results.append(
                RuleResult(
                    "freshness", rule_f.severity, False, f"column {rule_f.column!r} has no values"
                )
            )
        else:
            moment = newest
            if isinstance(moment, datetime):
                moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            elif isinstance(moment, date):
                moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
            age = now - moment
            results.append(
                RuleResult(
                    "freshness",
                    rule_f.severity,
                    age <= rule_f.max_age,
                    f"newest {rule_f.column!r} is {newest} ({_age(age.total_seconds())} old); "
                    f"at most {_age(rule_f.max_age.total_seconds())} allowed",
                )
            )
    if contract.dataset_checks:
        con.read_parquet([str(p) for p, _ in parts]).create_view("data", replace=True)
        try:
            for check in contract.dataset_checks:
                try:
                    rows_ = con.execute(check.sql).fetchall()
                    row = rows_[0] if rows_ else None
                except Exception as exc:
                    raise DataContractError(
                        f"Dataset check {check.name!r} cannot run: {exc}",
                        hint="It is a DuckDB query over the table `data` returning one boolean.",
                    ) from exc
                value = row[0] if row else None
                if not isinstance(value, bool):
                    raise DataContractError(
                        f"Dataset check {check.name!r} returned {value!r}; "
                        "it must return one boolean."
                    )
                results.append(
                    RuleResult(
                        f"check:{check.name}",
                        check.severity,
                        value,
                        "passed" if value else f"{check.sql} is false",
                    )
                )
        finally:
            con.execute("DROP VIEW IF EXISTS data")
    return results


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _unique_rule(
    con: duckdb.DuckDBPyConnection,
    keys: Path,
    key_columns: list[str],
    columns: tuple[str, ...],
    severity: str,
    sensitive: frozenset[str],
) -> RuleResult:
    refs = [f"k{key_columns.index(c)}" for c in columns]
    group = ", ".join(refs)
    not_null = " AND ".join(f"{r} IS NOT NULL" for r in refs)
    source = "read_parquet($path)"
    summary = con.execute(
        f"SELECT count(*), coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {source} "  # noqa: S608
        f"WHERE {not_null} GROUP BY {group} HAVING count(*) > 1)",
        {"path": str(keys)},
    ).fetchall()[0]
    groups, extra = (int(summary[0]), int(summary[1])) if summary else (0, 0)
    name = f"unique({', '.join(columns)})"
    if not groups:
        return RuleResult(name, severity, True, "no duplicates")
    rows = con.execute(
        f"SELECT {group}, count(*) AS n, list(__file ORDER BY __file, __row)[1:5], "  # noqa: S608
        f"list(__row ORDER BY __file, __row)[1:5] FROM {source} WHERE {not_null} "
        f"GROUP BY {group} HAVING count(*) > 1 ORDER BY n DESC LIMIT 5",
        {"path": str(keys)},
    ).fetchall()
    examples = []
    for row in rows:
        values = ", ".join(
            f"{c}={mask_value(str(v), c in sensitive)!r}"
            for c, v in zip(columns, row[: len(refs)], strict=True)
        )
        files, numbers = row[len(refs) + 1], row[len(refs) + 2]
        grouped: dict[str, list[str]] = {}
        for file, number in zip(files, numbers, strict=True):
            grouped.setdefault(file, []).append(str(number))
        where = "; ".join(
            f"{file} row{'s' if len(rows) > 1 else ''} {', '.join(rows)}"
            for file, rows in grouped.items()
        )
        examples.append(f"{values} appears {row[len(refs)]} times: {where}")
    return RuleResult(
        name,
        severity,
        False,
        f"{groups:,} value(s) repeat; {extra:,} row(s) beyond the first of each",
        tuple(examples),
    )
