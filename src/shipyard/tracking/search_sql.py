"""Run search as SQL: a parsed filter and ordering compiled to SQLAlchemy Core, and the
opaque page tokens that carry a keyset from one page to the next.

Every value from a filter or a page token reaches the database as a bound parameter;
keys too. Filters on params, tags and metrics become ``EXISTS`` subqueries on the narrow
indexed tables (``run_params``, ``run_tags``, ``run_latest_metrics``); orderings on them
become outer joins, with runs lacking the key last in either direction and the run id as
the final tie-breaker, so that the order is total and a keyset can resume it exactly.

>>> compiled = compile_filter(parse_filter("metrics.auc > 0.8"), "sqlite")
>>> select(runs.c.id).where(compiled.condition)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    collate,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import Grouping, UnaryExpression
from sqlalchemy.sql.operators import custom_op

from shipyard.core.errors import ShipyardError
from shipyard.store.schema.tracking import run_latest_metrics, run_params, run_tags, runs
from shipyard.tracking.search import (
    NULLABLE_ATTRIBUTES,
    TIME_ATTRIBUTES,
    And,
    Comparison,
    Field,
    FilterNode,
    Not,
    Or,
    OrderKey,
)

__all__ = [
    "DEFAULT_ORDER",
    "CompiledFilter",
    "Driver",
    "InvalidPageTokenError",
    "SortColumn",
    "compile_filter",
    "compile_order",
    "decode_page_token",
    "encode_page_token",
    "is_index_order",
    "keyset_after",
    "like_to_glob",
    "query_fingerprint",
    "term_signature",
    "unindexed",
]

Dialect = Literal["sqlite", "postgresql"]
SortKind = Literal["number", "text", "time"]

DEFAULT_ORDER = (OrderKey(Field("attribute", "start_time", 0), descending=True),)
"""Newest first, as ``shipyard runs list`` shows them."""

_NARROW: dict[str, Table] = {"metric": run_latest_metrics, "param": run_params, "tag": run_tags}
_WALKED: dict[str, FromClause] = {kind: table.alias("walked") for kind, table in _NARROW.items()}
"""A narrow table read in start-time order (``search_plan``'s "ordered" plan)."""
_ATTRIBUTE_COLUMNS: dict[str, ColumnElement[Any]] = {
    "run_id": runs.c.id,
    "name": runs.c.name,
    "status": runs.c.status,
    "user": runs.c.user,
    "experiment_id": runs.c.experiment_id,
    "parent_id": runs.c.parent_id,
    "git_commit": runs.c.git_commit,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
}
_DRIVER_OPS = frozenset({"=", "<", "<=", ">", ">=", "in"})
_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_TOKEN_VERSION = 1


class InvalidPageTokenError(ShipyardError):
    """A page token is malformed, tampered with, or belongs to another search."""

    code = "SY721"


# --- Filters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Driver:
    """A top-level ``and`` term on a narrow table: the rows of runs it can match come
    from one index range, so a selective one can drive the search."""

    table: Table
    condition: ColumnElement[bool]
    """On ``table`` alone (key and value), not correlated with ``runs``."""
    signature: tuple[Any, ...] = ()
    """What the term asks (table, key, operator, typed values): equal signatures match
    the same rows, so a count of them can be reused."""
    term: int = 0
    """Its position among the filter's top-level ``and`` terms (0 for a lone comparison)."""
    in_start_order: tuple[FromClause, ColumnElement[bool]] | None = None
    """For an equality, whose rows are one stretch of the ``(key, value, start_time)``
    index (so they come newest or oldest first): ``table`` aliased as ``walked``, and
    ``condition`` on that alias."""

    def run_ids(self) -> Select[str]:
        return select(self.table.c.run_id).where(self.condition)

    def count_at_most(self, cap: int) -> Select[int]:
        """How many rows match, counting no further than ``cap`` (an index range scan)."""
        rows = select(literal(1).label("one")).where(self.condition).limit(cap).subquery()
        return select(func.count()).select_from(rows)


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    condition: ColumnElement[bool]
    """A condition on ``runs`` (correlated subqueries on the narrow tables)."""
    drivers: tuple[Driver, ...]


def compile_filter(node: FilterNode | None, dialect: Dialect) -> CompiledFilter:
    """Compile a parsed filter into a condition on ``runs``; ``None`` matches every run."""
    if node is None:
        return CompiledFilter(true(), ())
    terms = node.items if isinstance(node, And) else (node,)
    drivers = tuple(
        Driver(
            _NARROW[term.field.kind],
            _narrow_condition(term, dialect),
            term_signature(term),
            position,
            (_WALKED[term.field.kind], _narrow_condition(term, dialect, walked=True))
            if term.op == "="
            else None,
        )
        for position, term in enumerate(terms)
        if isinstance(term, Comparison)
        and term.field.kind != "attribute"
        and term.op in _DRIVER_OPS
    )
    return CompiledFilter(_compile(node, dialect), drivers)


def term_signature(term: Comparison) -> tuple[Any, ...]:
    """What a comparison asks, hashable: equal signatures match the same rows."""
    values = tuple((type(value.value).__name__, value.value, value.text) for value in term.values)
    return (term.field.kind, term.field.key, term.op, values)


def _compile(node: FilterNode, dialect: Dialect, negated: bool = False) -> ColumnElement[bool]:
    """SQL for ``node`` (negated if asked) that stays shallow whatever the filter's shape.

    SQLite refuses expressions deeper than 1,000 and overflows its parser on ~50 nested
    parentheses. So negations are pushed down to the comparisons (De Morgan), nested
    ``and``s and ``or``s are flattened, and long chains are grouped as balanced trees.
    """
    if isinstance(node, Not):
        return _compile(node.item, dialect, not negated)
    if isinstance(node, Comparison):
        condition = _comparison(node, dialect)
        return not_(condition) if negated else condition
    conjunction = isinstance(node, And) != negated  # not (a or b) = not a and not b
    terms: list[ColumnElement[bool]] = []
    # Comparisons asking that a run have some row in a narrow table share one subquery:
    # in an 'or', all of a table's ('some row has A' or 'some row has B' = 'some row has
    # A or B'); in an 'and', those on one key (a run has at most one row per key).
    present: dict[tuple[str, str], list[Comparison]] = {}
    pending: list[FilterNode] = list(reversed(node.items))
    while pending:  # flatten: a and (b and c) = a and b and c, also under negation
        item = pending.pop()
        inner_negated = negated
        while isinstance(item, Not):
            item, inner_negated = item.item, not inner_negated
        if inner_negated == negated and isinstance(item, And if isinstance(node, And) else Or):
            pending.extend(reversed(item.items))
        elif (
            not inner_negated
            and isinstance(item, Comparison)
            and item.field.kind != "attribute"
            and item.op != "is null"
        ):
            group = (item.field.kind, item.field.key if conjunction else "")
            present.setdefault(group, []).append(item)
        else:
            terms.append(_compile(item, dialect, inner_negated))
    for (kind, key), comparisons in present.items():
        table = _NARROW[kind]
        if conjunction:
            values = [_value_condition(table.c.value, c, dialect) for c in comparisons
                      if c.op != "is not null"]  # fmt: skip
            inner = _balanced("AND", [table.c.key == key, *values])
        else:
            inner = _balanced("OR", [_narrow_condition(c, dialect) for c in comparisons])
        terms.append(exists().where(table.c.run_id == runs.c.id, inner))
    return _balanced("AND" if conjunction else "OR", terms)


def _balanced(keyword: str, terms: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    join = and_ if keyword == "AND" else or_
    if len(terms) <= 16:
        return join(*terms)
    middle = len(terms) // 2
    left, right = _balanced(keyword, terms[:middle]), _balanced(keyword, terms[middle:])
    # An explicit operator keeps the halves parenthesised: and_/or_ would re-flatten them.
    return Grouping(left.bool_op(keyword, precedence=100)(right))


def _comparison(comparison: Comparison, dialect: Dialect) -> ColumnElement[bool]:
    field = comparison.field
    if field.kind == "attribute":
        column = _ATTRIBUTE_COLUMNS[field.key]
        if comparison.op == "is null":
            return column.is_(None)
        if comparison.op == "is not null":
            return column.is_not(None)
        condition = _value_condition(column, comparison, dialect)
        if field.key in NULLABLE_ATTRIBUTES:
            # FALSE, not NULL, for a run without the attribute: 'not (...)' then includes it.
            return and_(column.is_not(None), condition)
        return condition
    table = _NARROW[field.kind]
    present = exists().where(table.c.run_id == runs.c.id, _narrow_condition(comparison, dialect))
    return not_(present) if comparison.op == "is null" else present


def _narrow_condition(
    comparison: Comparison, dialect: Dialect, *, walked: bool = False
) -> ColumnElement[bool]:
    table = (_WALKED if walked else _NARROW)[comparison.field.kind]
    has_key = table.c.key == comparison.field.key
    if comparison.op in ("is null", "is not null"):
        return has_key
    return and_(has_key, _value_condition(table.c.value, comparison, dialect))


def _value_condition(
    column: ColumnElement[Any], comparison: Comparison, dialect: Dialect
) -> ColumnElement[bool]:
    op = comparison.op
    values = [value.value for value in comparison.values]
    if op == "in":
        return column.in_(values)
    if op == "not in":
        return column.not_in(values)
    if "like" in op:
        pattern = str(values[0])
        if dialect == "sqlite" and "ilike" not in op:
            # SQLite's LIKE ignores ASCII case; GLOB is case-sensitive like PostgreSQL's LIKE.
            matched = column.op("GLOB", is_comparison=True)(like_to_glob(pattern))
        elif "ilike" in op and dialect == "postgresql":
            matched = column.ilike(pattern, escape="\\")
        else:
            matched = column.like(pattern, escape="\\")
        return not_(matched) if op.startswith("not") else matched
    compare: Callable[[Any, Any], ColumnElement[bool]] = _COMPARE[op]
    return compare(column, values[0])


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, backslash escapes) as the equivalent GLOB pattern.

    >>> like_to_glob("run_%[a]*")
    'run?*[[]a][*]'
    """
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(_glob_literal(pattern[index + 1]))
            index += 2
            continue
        out.append("*" if char == "%" else "?" if char == "_" else _glob_literal(char))
        index += 1
    return "".join(out)


def _glob_literal(char: str) -> str:
    return f"[{char}]" if char in "*?[" else char


# --- Ordering --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortColumn:
    """One key of a total order: an expression, its direction, and where it comes from."""

    expression: ColumnElement[Any]
    descending: bool
    nullable: bool
    kind: SortKind
    join: tuple[FromClause, ColumnElement[bool]] | None = None
    """The join (alias, on-clause) that brings a metric, param or tag value in."""
    table: Table | None = None
    """The narrow table holding that value, and its key."""
    key: str | None = None

    def order_by(self) -> list[ColumnElement[Any]]:
        direction = self.expression.desc() if self.descending else self.expression.asc()
        return [self.expression.is_(None).asc(), direction] if self.nullable else [direction]


def compile_order(
    keys: Sequence[OrderKey], dialect: Dialect, *, hide_indexes: bool = False
) -> list[SortColumn]:
    """The sort columns for ``keys`` (the default when empty), ending with the run id.

    ``hide_indexes`` keeps SQLite from walking an index in this order (see ``unindexed``).
    """
    columns: list[SortColumn] = []
    for index, key in enumerate(keys or DEFAULT_ORDER):
        field = key.field
        if field.kind == "attribute":
            column = _ATTRIBUTE_COLUMNS[field.key]
            kind: SortKind = "time" if field.key in TIME_ATTRIBUTES else "text"
            nullable = field.key in NULLABLE_ATTRIBUTES
            if kind == "text":
                expression = _text_order(column, dialect)
            else:
                expression = unindexed(column) if hide_indexes else column
            columns.append(SortColumn(expression, key.descending, nullable, kind))
            continue
        alias = _NARROW[field.kind].alias(f"order_{index}")
        on = and_(alias.c.run_id == runs.c.id, alias.c.key == field.key)
        kind = "number" if field.kind == "metric" else "text"
        expression = alias.c.value if kind == "number" else _text_order(alias.c.value, dialect)
        table = _NARROW[field.kind]
        columns.append(
            SortColumn(expression, key.descending, True, kind, (alias, on), table, field.key)
        )
    columns.append(SortColumn(_text_order(runs.c.id, dialect), False, False, "text"))
    return columns


def is_index_order(keys: Sequence[OrderKey]) -> bool:
    """Whether an index on ``runs`` yields this order (start time, the default)."""
    first = keys[0].field if keys else DEFAULT_ORDER[0].field
    return first.kind == "attribute" and first.key == "start_time"


def unindexed(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``+column``: the same value, but SQLite will not use an index on it (its documented
    way to steer the planner), so a search can start from a more selective term."""
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def _text_order(column: ColumnElement[Any], dialect: Dialect) -> ColumnElement[Any]:
    # Byte order on both backends (SQLite's default): a PostgreSQL database's own collation
    # (en_US, say) would order differently and, worse, disagree with the keyset.
    return collate(column, "C") if dialect == "postgresql" else column


def keyset_after(
    columns: Sequence[SortColumn], last: Sequence[Any], dialect: Dialect
) -> ColumnElement[bool]:
    """The condition selecting rows that sort after the row whose sort values are ``last``.

    Written flat, as ``beyond_1 OR (equal_1 AND beyond_2) OR ...``: nesting it key by key
    would add two levels of parentheses per key, and SQLite's parser stack is shallow.
    """
    alternatives: list[ColumnElement[bool]] = []
    equal_so_far: list[ColumnElement[bool]] = []
    for column, value in zip(columns, last, strict=True):
        expression = column.expression
        if dialect == "sqlite" and isinstance(value, float) and math.isnan(value):
            value = literal("NaN")  # how SQLite holds NaN (it would bind a float NaN as NULL)
        if value is None:  # the last row lacked this key: only rows lacking it follow
            equal_so_far.append(expression.is_(None))
            continue
        beyond = expression < value if column.descending else expression > value
        if column.nullable:  # runs lacking the key sort after every run having it
            beyond = or_(beyond, expression.is_(None))
        alternatives.append(and_(*equal_so_far, beyond))
        equal_so_far.append(expression == value)
    return or_(*alternatives) if alternatives else false()


# --- Page tokens -----------------------------------------------------------------------


def query_fingerprint(
    filter_string: str,
    order_by: Sequence[str],
    experiment_ids: Sequence[str] | None,
    include_deleted: bool,
) -> str:
    """What a page token is bound to: the same search, whatever the page size."""
    canonical = json.dumps(
        [
            filter_string,
            list(order_by),
            sorted(experiment_ids) if experiment_ids is not None else None,
            include_deleted,
        ]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_page_token(fingerprint: str, columns: Sequence[SortColumn], last: Sequence[Any]) -> str:
    """An opaque, URL-safe token holding the sort values of a page's last run."""
    values = [_encode_value(column, value) for column, value in zip(columns, last, strict=True)]
    payload = json.dumps({"v": _TOKEN_VERSION, "q": fingerprint, "k": values})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_page_token(token: str, fingerprint: str, columns: Sequence[SortColumn]) -> list[Any]:
    """The sort values a token holds; ``InvalidPageTokenError`` if it is not one of ours."""
    hint = "Pass next_page_token exactly as returned, or start again without a page token."
    if not isinstance(token, str) or not token or len(token) > 100_000:
        raise InvalidPageTokenError("The page token is empty, too long or not text.", hint=hint)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidPageTokenError(f"Page token {_clip(token)} is malformed.", hint=hint) from exc
    if not isinstance(payload, dict) or payload.get("v") != _TOKEN_VERSION:
        raise InvalidPageTokenError(f"Page token {_clip(token)} is malformed.", hint=hint)
    if payload.get("q") != fingerprint:
        raise InvalidPageTokenError(
            f"Page token {_clip(token)} belongs to another search.",
            hint="A token continues the search that returned it: keep the same filter, "
            "order and experiments, or start again without a page token.",
        )
    values = payload.get("k")
    if not isinstance(values, list) or len(values) != len(columns):
        raise InvalidPageTokenError(f"Page token {_clip(token)} is tampered with.", hint=hint)
    try:
        return [_decode_value(column, value) for column, value in zip(columns, values, strict=True)]
    except (TypeError, ValueError) as exc:
        raise InvalidPageTokenError(
            f"Page token {_clip(token)} is tampered with.", hint=hint
        ) from exc


def _encode_value(column: SortColumn, value: Any) -> Any:
    if value is None:
        return None
    if column.kind == "time":
        return value.isoformat()
    if column.kind == "number":
        number = float(value)
        return number if math.isfinite(number) else repr(number)  # JSON has no NaN or inf
    return str(value)


def _decode_value(column: SortColumn, value: Any) -> Any:
    if value is None:
        if not column.nullable:
            raise ValueError("a null for a column that is never null")
        return None
    if column.kind == "time":
        if not isinstance(value, str):
            raise TypeError("a timestamp must be text")
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a timestamp without a time zone")
        return moment
    if column.kind == "number":
        if isinstance(value, str) and value in ("nan", "inf", "-inf"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("a metric value must be a number")
        return float(value)
    if not isinstance(value, str):
        raise TypeError("a text value must be text")
    return value


def _clip(token: str) -> str:
    return repr(token if len(token) <= 24 else token[:21] + "...")
