"""The difference between two versions: schema, rows and statistics.

Rows are compared by DuckDB over the two versions' Parquet parts (bounded memory, spills
to disk). Without a key, rows are multisets: ``rows_added`` are the rows of ``b`` not in
``a`` (counting duplicates), ``rows_removed`` the reverse; a changed row counts as one
removed and one added. With a key (given, or the unique key both versions' contracts
declare), rows are matched by key: added and removed keys, and ``rows_changed``, keys
present in both whose other values differ. Statistics come from the two profiles.

>>> d = client.diff("credit@v1", "credit@v2")
>>> d.rows_added, d.rows_removed, [c.column for c in d.schema_changes]
(120, 4, ['Income'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataContractError
from shipyard.data.engine import connect, quote_identifier
from shipyard.data.records import DatasetVersion

if TYPE_CHECKING:
    import duckdb

    from shipyard.data.client import DatasetClient

__all__ = ["ColumnChange", "DatasetDiff", "StatChange", "diff_versions"]

_STATS = ("nulls", "null_fraction", "distinct", "min", "max", "mean", "std")


@dataclass(frozen=True, slots=True)
class ColumnChange:
    """A column added, removed, retyped or made (non-)nullable."""

    column: str
    change: str  # added | removed | type | nullable
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class StatChange:
    """One statistic of one column that differs between the two versions."""

    column: str
    statistic: str
    before: Any
    after: Any


@dataclass(frozen=True)
class DatasetDiff:
    """What changed from version ``a`` to version ``b``."""

    a: str
    b: str
    same_content: bool
    rows_a: int
    rows_b: int
    schema_changes: tuple[ColumnChange, ...]
    rows_added: int
    rows_removed: int
    rows_changed: int | None
    key: tuple[str, ...] | None
    stat_changes: tuple[StatChange, ...]
    files_added: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    files_modified: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same_content": self.same_content,
            "rows_a": self.rows_a,
            "rows_b": self.rows_b,
            "schema_changes": [
                {"column": c.column, "change": c.change, "before": c.before, "after": c.after}
                for c in self.schema_changes
            ],
            "rows_added": self.rows_added,
            "rows_removed": self.rows_removed,
            "rows_changed": self.rows_changed,
            "key": list(self.key) if self.key else None,
            "stat_changes": [
                {"column": s.column, "statistic": s.statistic, "before": s.before, "after": s.after}
                for s in self.stat_changes
            ],
            "files_added": list(self.files_added),
            "files_removed": list(self.files_removed),
            "files_modified": list(self.files_modified),
        }


def _schema_changes(a: DatasetVersion, b: DatasetVersion) -> list[ColumnChange]:
    before = {c.name: c for c in a.schema}
    after = {c.name: c for c in b.schema}
    changes = [ColumnChange(n, "removed", before[n].type, None) for n in before if n not in after]
    for name, column in after.items():
        old = before.get(name)
        if old is None:
            changes.append(ColumnChange(name, "added", None, column.type))
        elif old.type != column.type:
            changes.append(ColumnChange(name, "type", old.type, column.type))
        elif old.nullable != column.nullable:
            changes.append(
                ColumnChange(
                    name, "nullable", str(old.nullable).lower(), str(column.nullable).lower()
                )
            )
    return changes


def _declared_key(version: DatasetVersion) -> tuple[str, ...] | None:
    contract = version.contract or {}
    for rule in contract.get("unique", []):
        return tuple(rule["columns"])
    return None


def _differs(x: Any, y: Any) -> bool:
    if isinstance(x, int | float) and isinstance(y, int | float):
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return False
        return not math.isclose(float(x), float(y), rel_tol=1e-12, abs_tol=1e-12)
    return bool(x != y)


def diff_versions(
    client: DatasetClient,
    a: DatasetVersion,
    b: DatasetVersion,
    *,
    key: Sequence[str] | None = None,
) -> DatasetDiff:
    """Compare two versions of the same kind (see the module docstring)."""
    if a.kind != b.kind:
        raise DataContractError(
            f"Cannot compare {a.reference} ({a.kind}) with {b.reference} ({b.kind})."
        )
    if a.kind == "files":
        return _diff_files(client, a, b)
    same = a.content_id == b.content_id
    changes = _schema_changes(a, b)
    common = [c.name for c in b.schema if c.name in {x.name for x in a.schema}]
    chosen = tuple(key) if key else None
    if chosen is None:
        declared_a, declared_b = _declared_key(a), _declared_key(b)
        chosen = declared_b if declared_b is not None and declared_b == declared_a else None
    if chosen is not None:
        missing = [c for c in chosen if c not in common]
        if missing:
            raise DataContractError(f"Key column(s) {missing} are not in both versions.")
    added = removed = 0
    changed: int | None = None
    if not same:
        added, removed, changed = _row_diff(client, a, b, common, chosen, changes)
    stat_changes = [] if same else _stat_changes(client, a, b, common)
    return DatasetDiff(
        a=a.reference,
        b=b.reference,
        same_content=same,
        rows_a=a.num_rows,
        rows_b=b.num_rows,
        schema_changes=tuple(changes),
        rows_added=added,
        rows_removed=removed,
        rows_changed=changed if chosen else None,
        key=chosen,
        stat_changes=tuple(stat_changes),
    )


def _duck_type(type_name: str) -> str:
    from shipyard.data.types import parse_type

    try:
        return parse_type(type_name).duckdb or "VARCHAR"
    except DataContractError:  # nested types: compare their text
        return "VARCHAR"


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    return int(con.execute(query).fetchall()[0][0])


def _row_diff(
    client: DatasetClient,
    a: DatasetVersion,
    b: DatasetVersion,
    common: list[str],
    key: tuple[str, ...] | None,
    changes: list[ColumnChange],
) -> tuple[int, int, int | None]:
    # A retyped column is compared in its new type (9 and 9.0 are the same value).
    retyped = {c.column: _duck_type(c.after) for c in changes if c.change == "type" and c.after}

    def ref(column: str, side: str = "") -> str:
        # Column names are quoted identifiers (quotes doubled), never raw SQL.
        name = f"{side}{quote_identifier(column)}"
        return f"TRY_CAST({name} AS {retyped[column]})" if column in retyped else name

    con = connect()
    try:
        con.read_parquet([str(p) for p in client.part_paths(a)]).create_view("side_a")
        con.read_parquet([str(p) for p in client.part_paths(b)]).create_view("side_b")
        if not common:
            return b.num_rows, a.num_rows, None
        columns = ", ".join(ref(c) for c in common)
        if key is None:
            added = _count(
                con,
                f"SELECT count(*) FROM (SELECT {columns} FROM side_b "  # noqa: S608
                f"EXCEPT ALL SELECT {columns} FROM side_a)",
            )
            removed = _count(
                con,
                f"SELECT count(*) FROM (SELECT {columns} FROM side_a "  # noqa: S608
                f"EXCEPT ALL SELECT {columns} FROM side_b)",
            )
            return added, removed, None
        on = " AND ".join(f"{ref(k, 'x.')} = {ref(k, 'y.')}" for k in key)
        added = _count(con, f"SELECT count(*) FROM side_b x ANTI JOIN side_a y ON {on}")  # noqa: S608
        removed = _count(con, f"SELECT count(*) FROM side_a x ANTI JOIN side_b y ON {on}")  # noqa: S608
        others = [c for c in common if c not in key]
        changed = 0
        if others:
            differs = " OR ".join(f"{ref(c, 'x.')} IS DISTINCT FROM {ref(c, 'y.')}" for c in others)
            changed = _count(
                con,
                f"SELECT count(*) FROM side_a x JOIN side_b y ON {on} WHERE {differs}",  # noqa: S608
            )
        return added, removed, changed
    finally:
        con.close()


def _stat_changes(
    client: DatasetClient, a: DatasetVersion, b: DatasetVersion, common: list[str]
) -> list[StatChange]:
    if not a.profile_blob or not b.profile_blob:
        return []
    before = client.blobs.json(a.profile_blob)["columns"]
    after = client.blobs.json(b.profile_blob)["columns"]
    changes = []
    for column in common:
        old, new = before.get(column, {}), after.get(column, {})
        for statistic in _STATS:
            if statistic in old or statistic in new:
                x, y = old.get(statistic), new.get(statistic)
                if _differs(x, y):
                    changes.append(StatChange(column, statistic, x, y))
    return changes


def _diff_files(client: DatasetClient, a: DatasetVersion, b: DatasetVersion) -> DatasetDiff:
    from shipyard.data.files import read_manifest

    before = {e.path: e for e in read_manifest(client, a)}
    after = {e.path: e for e in read_manifest(client, b)}
    added = tuple(sorted(p for p in after if p not in before))
    removed = tuple(sorted(p for p in before if p not in after))
    modified = tuple(
        sorted(p for p in after if p in before and after[p].content_id != before[p].content_id)
    )
    return DatasetDiff(
        a=a.reference,
        b=b.reference,
        same_content=a.content_id == b.content_id,
        rows_a=a.num_rows,
        rows_b=b.num_rows,
        schema_changes=(),
        rows_added=len(added),
        rows_removed=len(removed),
        rows_changed=len(modified),
        key=("path",),
        stat_changes=(),
        files_added=added,
        files_removed=removed,
        files_modified=modified,
    )
