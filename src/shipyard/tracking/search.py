"""The run search language: filters like ``metrics.auc > 0.8 and params.model = 'gbm'``.

A hand-written tokenizer and recursive-descent parser turn a filter into a small AST
(``And``, ``Or``, ``Not``, ``Comparison``); ``shipyard.tracking.search_sql`` compiles it
to SQL with bound parameters only, so a filter can never change the shape of a query.

Grammar (keywords are case-insensitive)::

    filter     := [or_expr] EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
                | field "is" ["not"] "null"
    op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | ["not"] "like" | ["not"] "ilike"
    field      := ("metrics" | "params" | "tags") "." key | ["attributes" "."] attribute
    key        := bare-key | `back quoted` | "double quoted"
    value      := number | 'single quoted' | "double quoted"

Fields:

- ``metrics.<key>``: the run's latest value of the metric; compared as a number
  (``= != < <= > >= in``). A string literal is an error.
- ``params.<key>``, ``tags.<key>``: strings (``= != like ilike in``), as in MLflow. A
  number literal compares as the text written (``params.depth = 6`` matches ``'6'``, and
  ``params.lr = 1e-3`` matches ``'1e-3'``, not ``'0.001'``); ``< <= > >=`` are errors
  (string order would put ``'10'`` before ``'9'``; log the value as a metric to compare).
- attributes: ``run_id``, ``name`` (or ``run_name``), ``status``, ``user``,
  ``experiment_id``, ``parent_id``, ``git_commit`` (strings), ``start_time``, ``end_time``
  (an ISO 8601 string, UTC unless it has an offset, or seconds since the epoch).
  ``status`` takes ``running``, ``finished``, ``failed`` or ``killed`` in any case.

A comparison that names a key needs the run to have it: ``params.x != 'a'`` matches runs
whose param ``x`` exists and differs. ``is null`` matches runs without the key (or with
a null attribute), ``is not null`` runs with it. In ``like`` patterns ``%`` matches any
text, ``_`` one character, and ``\\%`` / ``\\_`` a literal ``%`` / ``_``; ``like`` is case
sensitive, ``ilike`` is not (ASCII letters only on SQLite).

Bare keys use letters, digits, ``_``, ``-``, ``.`` and ``/``; quote others (spaces):
``metrics.`val loss` < 0.3``. Strings take backslash escapes (``\\'``, ``\\"``, ``\\\\``,
``\\n``, ``\\t``) or a doubled quote (``'it''s'``).

>>> parse_filter("metrics.auc > 0.8 and params.model = 'gbm'")
And(items=(Comparison(...), Comparison(...)))

Malformed filters raise ``SearchSyntaxError`` naming the position of the offending token.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from shipyard.tracking.records import RunStatus
from shipyard.tracking.search_lexer import (
    BARE_KEY,
    FILTER_HINT,
    KEYWORDS,
    ORDER_HINT,
    SearchSyntaxError,
    Token,
    TokenKind,
    check_text,
    describe,
    syntax_error,
    tokenize,
)

__all__ = [
    "ATTRIBUTES",
    "NULLABLE_ATTRIBUTES",
    "TIME_ATTRIBUTES",
    "And",
    "Comparison",
    "Field",
    "FilterNode",
    "Not",
    "Or",
    "OrderKey",
    "SearchSyntaxError",
    "Value",
    "parse_filter",
    "parse_order_by",
]

MAX_DEPTH = 25
"""Nesting of parentheses and ``not`` (SQLite's parser overflows on ~40 nested groups)."""
MAX_COMPARISONS = 200
"""Per filter: PostgreSQL's planner slows down sharply past a few hundred subqueries."""
MAX_VALUES = 5_000
"""Literal values in all (``in`` lists included): each becomes one bound parameter."""
MAX_ORDER_KEYS = 8

FieldKind = Literal["metric", "param", "tag", "attribute"]

STRING_ATTRIBUTES = ("run_id", "name", "status", "user", "experiment_id", "parent_id", "git_commit")
TIME_ATTRIBUTES = ("start_time", "end_time")
ATTRIBUTES = (*STRING_ATTRIBUTES, *TIME_ATTRIBUTES)
"""The run attributes a filter or an ordering may name."""
NULLABLE_ATTRIBUTES = frozenset({"parent_id", "git_commit", "end_time"})
_ATTRIBUTE_ALIASES = {"run_name": "name", "id": "run_id", "user_id": "user"}
_STATUSES: tuple[RunStatus, ...] = ("running", "finished", "failed", "killed")
_KINDS: dict[str, FieldKind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "parameters": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
}


# --- AST -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """What a comparison looks at: a metric, param or tag key, or a run attribute."""

    kind: FieldKind
    key: str
    position: int
    """0-based offset in the filter text."""

    def __str__(self) -> str:
        if self.kind == "attribute":
            return self.key
        quoted = self.key if BARE_KEY.fullmatch(self.key) else "`" + self.key + "`"
        return f"{self.kind}s.{quoted}"


@dataclass(frozen=True, slots=True)
class Value:
    """A literal: the parsed value and the text written (what params compare with)."""

    value: str | float | datetime
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``; ``values`` holds the list of ``in``, nothing for ``is null``."""

    field: Field
    op: str
    """``= != < <= > >= like ilike not like not ilike in not in is null is not null``."""
    values: tuple[Value, ...]
    position: int


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: FilterNode


FilterNode = And | Or | Not | Comparison


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One key of an ordering; runs lacking it sort last in either direction."""

    field: Field
    descending: bool

    def __str__(self) -> str:
        return f"{self.field} {'DESC' if self.descending else 'ASC'}"


# --- Parser ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self._tokens = tokenize(text, what)
        self._current = next(self._tokens)
        self.comparisons = 0
        self.values = 0

    @property
    def token(self) -> Token:
        return self._current

    def advance(self) -> Token:
        token = self._current
        if token.kind != "end":
            self._current = next(self._tokens)
        return token

    def at(self, kind: TokenKind) -> bool:
        return self._current.kind == kind

    def at_word(self, *words: str) -> bool:
        return self.at("word") and self.token.value in words

    def fail(self, expected: str) -> SearchSyntaxError:
        token = self.token
        hint = FILTER_HINT if self.what == "filter" else ORDER_HINT
        if token.kind == "end":
            message = f"The {self.what} ends too early; expected {expected}"
            return self.error(message, len(self.text.rstrip()), hint=hint)  # just past the end
        message = f"Unexpected {describe(token)}; expected {expected}"
        return self.error(message, token.position, len(token.text), hint=hint)

    def error(
        self, message: str, position: int, width: int = 1, hint: str | None = None
    ) -> SearchSyntaxError:
        return syntax_error(message, self.text, self.what, position, width, hint=hint)

    def parse_filter(self) -> FilterNode | None:
        if self.at("end"):
            return None
        node = self.or_expr(0)
        if not self.at("end"):
            raise self.fail("'and', 'or' or the end of the filter")
        return node

    def or_expr(self, depth: int) -> FilterNode:
        items = [self.and_expr(depth)]
        while self.at_word("or"):
            self.advance()
            items.append(self.and_expr(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self, depth: int) -> FilterNode:
        items = [self.not_expr(depth)]
        while self.at_word("and"):
            self.advance()
            items.append(self.not_expr(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self, depth: int) -> FilterNode:
        if depth >= MAX_DEPTH:
            raise self.error(
                f"Filter nests deeper than {MAX_DEPTH} levels of parentheses or 'not'",
                self.token.position,
                hint="Flatten it: a and b and c needs no parentheses.",
            )
        if self.at_word("not"):
            self.advance()
            return Not(self.not_expr(depth + 1))
        if not self.at("("):
            return self.comparison()
        opening = self.advance()
        node = self.or_expr(depth + 1)
        if self.at("end"):
            raise self.error("Unclosed parenthesis", opening.position, hint="Add the ')'.")
        if not self.at(")"):
            raise self.fail("')', 'and' or 'or'")
        self.advance()
        return node

    def comparison(self) -> Comparison:
        field = self.field()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.error(
                f"Filter has more than {MAX_COMPARISONS} comparisons",
                field.position,
                hint="Split the search, or use 'in' lists.",
            )
        token = self.token
        if token.kind == "op":
            self.advance()
            op = "!=" if token.value == "<>" else token.value
            return self.checked(Comparison(field, op, (self.value(),), token.position))
        if self.at_word("is"):
            self.advance()
            negated = self.at_word("not")
            if negated:
                self.advance()
            if not self.at_word("null"):
                raise self.fail("'null' after 'is" + (" not'" if negated else "'"))
            self.advance()
            op = "is not null" if negated else "is null"
            return self.checked(Comparison(field, op, (), token.position))
        negated = self.at_word("not")
        if negated:
            self.advance()
        if self.at_word("like", "ilike"):
            op = ("not " if negated else "") + self.advance().value
            return self.checked(Comparison(field, op, (self.value(),), token.position))
        if self.at_word("in"):
            self.advance()
            if not self.at("("):
                raise self.fail("'(' opening the list after 'in'")
            self.advance()
            values = [self.value()]
            while self.at(","):
                self.advance()
                values.append(self.value())
            if not self.at(")"):
                raise self.fail("',' or ')' in the list after 'in'")
            self.advance()
            op = "not in" if negated else "in"
            return self.checked(Comparison(field, op, tuple(values), token.position))
        expected = "'like', 'ilike' or 'in' after 'not'" if negated else "a comparison operator"
        raise self.fail(expected + " (= != < <= > >= like ilike in, not in, is null)")

    def field(self) -> Field:
        token = self.token
        if token.kind == "field":
            self.advance()
            kind = _KINDS[token.prefix]
            if kind == "attribute":
                return Field("attribute", self.attribute(token.value, token), token.position)
            return Field(kind, token.value, token.position)
        if token.kind == "word" and token.value not in KEYWORDS:
            self.advance()
            return Field("attribute", self.attribute(token.value, token), token.position)
        raise self.fail("a field (metrics.<key>, params.<key>, tags.<key> or an attribute)")

    def attribute(self, name: str, token: Token) -> str:
        name = _ATTRIBUTE_ALIASES.get(name.lower(), name.lower())
        if name in ATTRIBUTES:
            return name
        close = difflib.get_close_matches(name, [*ATTRIBUTES, "run_name"], n=1)
        raise self.error(
            f"Unknown attribute '{token.value}'",
            token.position,
            len(token.text),
            hint=(f"Did you mean '{close[0]}'? " if close else "")
            + f"Attributes: {', '.join(ATTRIBUTES)}; or metrics.<key>, params.<key>, "
            "tags.<key>.",
        )

    def value(self) -> Value:
        token = self.token
        if token.kind not in ("string", "number"):
            raise self.fail("a value (a number or a quoted string)")
        self.advance()
        self.values += 1
        if self.values > MAX_VALUES:
            raise self.error(
                f"Filter has more than {MAX_VALUES} values",
                token.position,
                hint="Split the search into several.",
            )
        if token.kind == "string":
            return Value(token.value, token.text, token.position)
        number = float(token.value)
        if not math.isfinite(number):
            raise self.error(
                f"Number {token.text} is out of range",
                token.position,
                len(token.text),
                hint="Use a number between -1.8e308 and 1.8e308.",
            )
        return Value(number, token.text, token.position)

    # --- Types: what each field can be compared with ------------------------------------

    def checked(self, comparison: Comparison) -> Comparison:
        """Refuse comparisons that do not fit the field's type; convert their values."""
        field, op, where = comparison.field, comparison.op, comparison.position
        if op in ("is null", "is not null"):
            if field.kind == "attribute" and field.key not in NULLABLE_ATTRIBUTES:
                raise self.error(
                    f"'{field.key}' is never null, so '{op}' would match "
                    + ("every run" if op == "is not null" else "no run"),
                    where,
                    len(op),
                    hint=f"Nullable attributes: {', '.join(sorted(NULLABLE_ATTRIBUTES))}.",
                )
            return comparison
        numeric = field.kind == "metric"
        timed = field.kind == "attribute" and field.key in TIME_ATTRIBUTES
        textual = "like" in op
        if textual and (numeric or timed):
            raise self.error(
                f"'{op}' compares text, but {field} is a " + ("number" if numeric else "timestamp"),
                where,
                len(op),
                hint="Use = != < <= > >= with "
                + ("a number: metrics.auc > 0.8." if numeric else "a date: '2026-01-31'."),
            )
        if op in ("<", "<=", ">", ">=") and not (numeric or timed):
            raise self.error(
                f"'{op}' cannot compare {field}, which is text",
                where,
                len(op),
                hint="Text order would put '10' before '9'. Use = != like ilike in on text, "
                "or log numbers as metrics to compare them (metrics.lr < 0.1).",
            )
        values = tuple(self.converted(field, value) for value in comparison.values)
        if textual:
            pattern = str(values[0].value)
            if (len(pattern) - len(pattern.rstrip("\\"))) % 2 == 1:
                raise self.error(
                    "A like pattern cannot end with a lone backslash",
                    values[0].position,
                    len(values[0].text),
                    hint="A backslash makes the next character literal (\\% is a %); "
                    "double it for a backslash.",
                )
        return Comparison(field, op, values, where)

    def converted(self, field: Field, value: Value) -> Value:
        if field.kind == "metric":
            if isinstance(value.value, float):
                return value
            raise self.error(
                f"{field} is a number, but {_clip(value.text)} is a string",
                value.position,
                len(value.text),
                hint=f"Compare it with a number: {field} > 0.8.",
            )
        if field.kind == "attribute" and field.key in TIME_ATTRIBUTES:
            return Value(self.timestamp(field, value), value.text, value.position)
        text = value.value if isinstance(value.value, str) else value.text
        if field.kind == "attribute" and field.key == "status":
            text = text.lower()
            if "%" not in text and "_" not in text and text not in _STATUSES:
                raise self.error(
                    f"Unknown status {_clip(value.text)}",
                    value.position,
                    len(value.text),
                    hint=f"A status is one of: {', '.join(_STATUSES)}.",
                )
        return Value(text, value.text, value.position)

    def timestamp(self, field: Field, value: Value) -> datetime:
        if isinstance(value.value, float):
            try:
                return datetime.fromtimestamp(value.value, UTC)
            except (OverflowError, OSError, ValueError):
                pass
        elif isinstance(value.value, str):
            try:
                moment = datetime.fromisoformat(value.value.strip())
            except ValueError:
                pass
            else:
                return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        raise self.error(
            f"{field} takes a date, a time or seconds since the epoch, not {_clip(value.text)}",
            value.position,
            len(value.text),
            hint="Write an ISO 8601 date ('2026-01-31', '2026-01-31T08:00:00+02:00'; UTC "
            "unless an offset is given) or seconds since the epoch (1769817600).",
        )


def parse_filter(filter_string: str) -> FilterNode | None:
    """Parse a run filter; ``None`` for an empty one (every run matches).

    >>> parse_filter("params.model = 'gbm' or metrics.auc >= 0.9")
    Or(items=(Comparison(...), Comparison(...)))
    """
    text = check_text(filter_string, "filter")
    return _Parser(text, "filter").parse_filter()


def parse_order_by(clauses: Sequence[str] | str) -> list[OrderKey]:
    """Parse ordering clauses such as ``["metrics.auc DESC", "name"]`` (or one clause
    with commas: ``"metrics.auc DESC, name"``). Ascending unless ``DESC`` is given.

    >>> parse_order_by(["metrics.auc desc"])
    [OrderKey(field=Field(kind='metric', key='auc', position=0), descending=True)]
    """
    keys: list[OrderKey] = []
    for clause in [clauses] if isinstance(clauses, str) else clauses:
        parser = _Parser(check_text(clause, "order_by"), "order_by")
        if parser.at("end"):
            raise syntax_error("Empty clause", parser.text, "order_by", None, hint=ORDER_HINT)
        while True:
            field = parser.field()
            descending = parser.at_word("desc")
            if parser.at_word("asc", "desc"):
                parser.advance()
            keys.append(OrderKey(field, descending))
            if parser.at("end"):
                break
            if not parser.at(","):
                raise parser.fail("ASC, DESC, ',' or the end of the clause")
            parser.advance()
    if len(keys) > MAX_ORDER_KEYS:
        raise SearchSyntaxError(
            f"order_by has {len(keys)} keys; at most {MAX_ORDER_KEYS} are allowed.",
            hint="Order by fewer keys.",
        )
    return keys


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
