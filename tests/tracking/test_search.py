"""The run search language: tokens, grammar, types, errors that point at the token, and
the SQL it compiles to (bound parameters only). Execution on real stores is in
``test_queries.py``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.core.errors import ShipyardError
from shipyard.store.schema.tracking import runs
from shipyard.tracking.search import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_ORDER_KEYS,
    And,
    Comparison,
    Field,
    Not,
    Or,
    OrderKey,
    SearchSyntaxError,
    parse_filter,
    parse_order_by,
)
from shipyard.tracking.search_lexer import MAX_TEXT_LENGTH
from shipyard.tracking.search_sql import (
    InvalidPageTokenError,
    compile_filter,
    compile_order,
    decode_page_token,
    encode_page_token,
    like_to_glob,
)


def comparison(text: str) -> Comparison:
    node = parse_filter(text)
    assert isinstance(node, Comparison), node
    return node


def shape(text: str) -> str:
    """A filter's tree in a compact form: ``or(and(a, b), not(c))``."""

    def walk(node: object) -> str:
        if isinstance(node, And):
            return "and(" + ", ".join(walk(item) for item in node.items) + ")"
        if isinstance(node, Or):
            return "or(" + ", ".join(walk(item) for item in node.items) + ")"
        if isinstance(node, Not):
            return "not(" + walk(node.item) + ")"
        assert isinstance(node, Comparison)
        return node.field.key

    return walk(parse_filter(text))


def syntax_error(text: str) -> SearchSyntaxError:
    with pytest.raises(SearchSyntaxError) as caught:
        parse_filter(text)
    return caught.value


# --- Fields, operators and values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "key"),
    [
        ("metrics.auc", "metric", "auc"),
        ("metric.auc", "metric", "auc"),
        ("params.learning_rate", "param", "learning_rate"),
        ("param.lr", "param", "lr"),
        ("tags.team", "tag", "team"),
        ("METRICS.AUC", "metric", "AUC"),
        ("metrics.val/loss", "metric", "val/loss"),
        ("params.model.depth", "param", "model.depth"),
        ("metrics.f1-score", "metric", "f1-score"),
        ("metrics.`val loss`", "metric", "val loss"),
        ('tags."mlflow.runName"', "tag", "mlflow.runName"),
        ("metrics.`a``b`", "metric", "a`b"),
        ("params.Größe", "param", "Größe"),
        ("status", "attribute", "status"),
        ("attributes.status", "attribute", "status"),
        ("run_name", "attribute", "name"),
        ("id", "attribute", "run_id"),
        ("Start_Time", "attribute", "start_time"),
    ],
)
def test_fields(text: str, kind: str, key: str) -> None:
    value = "'2026-01-01'" if key in ("start_time",) else "1" if kind == "metric" else "'x'"
    if key == "status":
        value = "'finished'"
    found = comparison(f"{text} = {value}").field
    assert (found.kind, found.key) == (kind, key)


@pytest.mark.parametrize(
    ("text", "op", "values"),
    [
        ("metrics.a = 1", "=", (1.0,)),
        ("metrics.a == 1", None, None),
        ("metrics.a != 1", "!=", (1.0,)),
        ("metrics.a <> 1", "!=", (1.0,)),
        ("metrics.a < 1", "<", (1.0,)),
        ("metrics.a <= 1", "<=", (1.0,)),
        ("metrics.a > 1", ">", (1.0,)),
        ("metrics.a >= 1", ">=", (1.0,)),
        ("metrics.a in (1, 2.5)", "in", (1.0, 2.5)),
        ("metrics.a NOT IN (-1)", "not in", (-1.0,)),
        ("params.p like 'a%'", "like", ("a%",)),
        ("params.p ILIKE 'A%'", "ilike", ("A%",)),
        ("params.p not like 'a_'", "not like", ("a_",)),
        ("params.p not ilike 'a'", "not ilike", ("a",)),
        ("params.p in ('a', \"b\")", "in", ("a", "b")),
        ("tags.t is null", "is null", ()),
        ("tags.t IS NOT NULL", "is not null", ()),
    ],
)
def test_operators(text: str, op: str | None, values: tuple[object, ...] | None) -> None:
    if op is None:
        assert "'==' is not a comparison operator" in syntax_error(text).message
        return
    found = comparison(text)
    assert found.op == op
    assert tuple(value.value for value in found.values) == values


@pytest.mark.parametrize(
    ("literal", "number"),
    [
        ("3", 3.0),
        ("-3", -3.0),
        ("+3", 3.0),
        ("0.25", 0.25),
        (".5", 0.5),
        ("-.5", -0.5),
        ("5.", 5.0),
        ("1e-3", 0.001),
        ("-2.5E+2", -250.0),
    ],
)
def test_numbers(literal: str, number: float) -> None:
    assert comparison(f"metrics.a>{literal}").values[0].value == number


@pytest.mark.parametrize(
    ("literal", "text"),
    [
        ("'gbm'", "gbm"),
        ('"gbm"', "gbm"),
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'a\\\\b'", "a\\b"),
        ("'tab\\there'", "tab\there"),
        ("''", ""),
        ("'日本語 ✓'", "日本語 ✓"),
        ("'; DROP TABLE runs; --'", "; DROP TABLE runs; --"),
    ],
)
def test_strings(literal: str, text: str) -> None:
    assert comparison(f"params.p = {literal}").values[0].value == text


def test_numbers_compared_with_params_and_tags_compare_as_written() -> None:
    # Params are text, as in MLflow: '6' matches 6; 1e-3 matches '1e-3', not '0.001'.
    assert comparison("params.depth = 6").values[0].value == "6"
    assert comparison("params.lr = 1e-3").values[0].value == "1e-3"
    assert comparison("tags.n in (1, '2')").values[0].value == "1"


def test_status_is_case_insensitive_and_checked() -> None:
    assert comparison("status = 'FINISHED'").values[0].value == "finished"
    assert comparison("status like 'fin%'").values[0].value == "fin%"
    error = syntax_error("status = 'done'")
    assert "Unknown status 'done'" in error.message
    assert error.hint is not None and "running, finished, failed, killed" in error.hint


def test_times_take_iso_dates_and_epoch_seconds() -> None:
    assert comparison("start_time >= '2026-01-31'").values[0].value == datetime(
        2026, 1, 31, tzinfo=UTC
    )
    moment = comparison("end_time < '2026-01-31T10:00:00+02:00'").values[0].value
    assert moment == datetime(2026, 1, 31, 8, tzinfo=UTC)
    assert comparison("start_time > 0").values[0].value == datetime(1970, 1, 1, tzinfo=UTC)
    assert "takes a date" in syntax_error("start_time > 'yesterday'").message
    assert "takes a date" in syntax_error("start_time > 1e300").message


def test_empty_filters_match_everything() -> None:
    assert parse_filter("") is None
    assert parse_filter("  \n\t ") is None


# --- Precedence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("metrics.a > 1 and metrics.b > 1 or metrics.c > 1", "or(and(a, b), c)"),
        ("metrics.a > 1 or metrics.b > 1 and metrics.c > 1", "or(a, and(b, c))"),
        ("(metrics.a > 1 or metrics.b > 1) and metrics.c > 1", "and(or(a, b), c)"),
        ("not metrics.a > 1 and metrics.b > 1", "and(not(a), b)"),
        ("not (metrics.a > 1 and metrics.b > 1)", "not(and(a, b))"),
        ("metrics.a > 1 AND metrics.b > 1 AND metrics.c > 1", "and(a, b, c)"),
        ("((metrics.a > 1))", "a"),
        ("not not metrics.a > 1", "not(not(a))"),
    ],
)
def test_precedence(text: str, tree: str) -> None:
    assert shape(text) == tree


# --- Type rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("metrics.auc > '0.8'", "metrics.auc is a number, but '0.8' is a string"),
        ("metrics.auc like '0.%'", "'like' compares text, but metrics.auc is a number"),
        ("params.lr > 0.1", "'>' cannot compare params.lr, which is text"),
        ("tags.n <= '5'", "'<=' cannot compare tags.n, which is text"),
        ("name < 'b'", "'<' cannot compare name, which is text"),
        ("start_time like '2026%'", "'like' compares text, but start_time is a timestamp"),
        ("name is null", "'name' is never null"),
        ("status is not null", "'status' is never null"),
        ("params.p like 'abc\\\\'", "cannot end with a lone backslash"),
        ("metrics.a > 1e999", "out of range"),
    ],
)
def test_comparisons_that_do_not_fit_the_type(text: str, needle: str) -> None:
    error = syntax_error(text)
    assert needle in error.message
    assert error.hint


# --- Errors point at the offending token ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle", "position"),
    [
        ("metrics.auc >> 0.8", "'>>' is not a comparison operator", 13),
        ("metrics.auc > ", "ends too early; expected a value", 14),
        ("metrics.auc 0.8", "Unexpected number 0.8; expected a comparison operator", 13),
        ("metrics.auc > 0.8 and", "ends too early; expected a field", 22),
        ("metrics.auc > 0.8 params.x = 'a'", "Unexpected 'params.x'", 19),
        ("(metrics.auc > 0.8", "Unclosed parenthesis", 1),
        ("metrics.auc > 0.8)", "Unexpected ')'", 18),
        ("params.x = 'abc", "Unterminated string", 12),
        ("metrics.`val loss > 1", "Unterminated key", 9),
        ("stauts = 'x'", "Unknown attribute 'stauts'", 1),
        ("foo.bar = 1", "Unknown field prefix 'foo'", 1),
        ("metrics. > 1", "'metrics.' is not followed by a key", 9),
        ("metrics.a > 1.2.3", "Malformed number '1.2.3'", 13),
        ("metrics.a > 12abc", "Malformed number '12abc'", 13),
        ("params.x = 'a' ; drop", "Unexpected character ';'", 16),
        ("params.x in 'a'", "expected '(' opening the list", 13),
        ("params.x in ('a' 'b')", "expected ',' or ')'", 18),
        ("params.x in ()", "expected a value", 14),
        ("params.x not = 'a'", "expected 'like', 'ilike' or 'in' after 'not'", 14),
        ("tags.t is 'x'", "expected 'null' after 'is'", 11),
        ("and metrics.a > 1", "Unexpected word 'and'; expected a field", 1),
        ("metrics.a > 1 or or metrics.b > 1", "Unexpected word 'or'", 18),
        ("params.x = 'a\x00'", "contains U+0000", 14),
        ("€ = 1", "Unexpected character '€'", 1),
        ("params.x = '' OR 1=1 --", "Unexpected number 1; expected a field", 18),
    ],
)
def test_errors_name_the_token_and_its_position(text: str, needle: str, position: int) -> None:
    error = syntax_error(text)
    assert needle in error.message
    assert error.position == position
    assert f"at position {position} in filter: " in error.message
    assert "\n" not in error.message  # one line for the CLI; the caret comes with str()
    filter_line, caret_line = error.caret_lines().splitlines()
    assert caret_line.index("^") == filter_line.index(text.replace("\x00", " ")[:1]) + position - 1
    assert str(error).startswith(error.message + "\n" + error.caret_lines())


def test_the_caret_sits_under_the_token() -> None:
    error = syntax_error("metrics.auc >> 0.8")
    assert error.caret_lines() == "  metrics.auc >> 0.8\n              ^^"


def test_errors_in_long_filters_show_the_neighbourhood_of_the_token() -> None:
    text = " and ".join(f"metrics.m{i} > {i}" for i in range(150)) + " and metrics.z >> 1"
    error = syntax_error(text)
    assert "'>>'" in error.message
    assert len(error.message) < 250
    assert error.message.rstrip().endswith("metrics.z >> 1")
    filter_line, caret_line = error.caret_lines().splitlines()
    assert filter_line[caret_line.index("^") :].startswith(">>")


def test_nesting_is_capped_with_a_clear_error() -> None:
    fine = "(" * (MAX_DEPTH - 1) + "metrics.a > 1" + ")" * (MAX_DEPTH - 1)
    assert isinstance(parse_filter(fine), Comparison)
    error = syntax_error("(" * 5000 + "metrics.a > 1" + ")" * 5000)
    assert f"deeper than {MAX_DEPTH} levels" in error.message
    assert "not " * 200 and "deeper" in syntax_error("not " * 200 + "metrics.a > 1").message


def test_size_limits() -> None:
    many = " or ".join(f"metrics.m{i} > 0" for i in range(MAX_COMPARISONS + 1))
    assert f"more than {MAX_COMPARISONS} comparisons" in syntax_error(many).message
    huge = "params.p = '" + "x" * MAX_TEXT_LENGTH + "'"
    assert "characters long" in syntax_error(huge).message
    values = "params.p in (" + ", ".join(["'v'"] * 6000) + ")"
    assert "more than 5000 values" in syntax_error(values).message


def test_ten_thousand_character_filters_parse() -> None:
    ors = " or ".join(f"params.p = 'a-rather-long-value-with-number-{i:06}'" for i in range(200))
    assert len(ors) > 10_000
    node = parse_filter(ors)
    assert isinstance(node, Or) and len(node.items) == 200
    listed = "params.p in (" + ", ".join(f"'v{i}'" for i in range(2000)) + ")"
    assert len(listed) > 10_000
    assert len(comparison(listed).values) == 2000
    long_value = comparison("tags.note = '" + "é" * 10_000 + "'")
    assert long_value.values[0].value == "é" * 10_000


@pytest.mark.parametrize("bad", [None, 42, b"metrics.a > 1", ["metrics.a > 1"]])
def test_a_filter_must_be_text(bad: object) -> None:
    with pytest.raises(SearchSyntaxError, match="must be a string"):
        parse_filter(bad)  # type: ignore[arg-type]


# --- Ordering -------------------------------------------------------------------------------


def test_order_by() -> None:
    assert parse_order_by(["metrics.auc DESC", "name"]) == [
        OrderKey(Field("metric", "auc", 0), descending=True),
        OrderKey(Field("attribute", "name", 0), descending=False),
    ]
    keys = parse_order_by(["params.`learning rate` asc, start_time desc"])
    assert [(k.field.key, k.descending) for k in keys] == [
        ("learning rate", False),
        ("start_time", True),
    ]
    assert parse_order_by([]) == []
    assert parse_order_by("tags.team") == [OrderKey(Field("tag", "team", 0), False)]


@pytest.mark.parametrize(
    ("clauses", "needle"),
    [
        (["metrics.auc DESCENDING"], "Unexpected word 'DESCENDING'"),
        (["metrics.auc desc,"], "ends too early; expected a field"),
        ([""], "Empty clause in order_by (it is empty)"),
        (["metrics.auc > 1"], "Unexpected '>'"),
        (["colour"], "Unknown attribute 'colour'"),
        (["metrics.m"] * (MAX_ORDER_KEYS + 1), f"at most {MAX_ORDER_KEYS}"),
        ([3], "must be a string"),
    ],
)
def test_bad_orderings(clauses: list[str], needle: str) -> None:
    with pytest.raises(SearchSyntaxError) as caught:
        parse_order_by(clauses)
    assert needle in caught.value.message
    assert caught.value.hint


# --- SQL: bound parameters only ---------------------------------------------------------------


HOSTILE = [
    "params.x = ''' OR 1=1 --'",
    "params.x = '''; DROP TABLE runs; --'",
    "tags.t = '\\'; DELETE FROM run_params; --'",
    "metrics.`a'; DROP TABLE runs; --` > 1",
    "params.`\"; DROP TABLE runs; --` = 'x'",
    "name like '%'' OR ''1''=''1'",
    "params.x in ('a', 'b''); DROP TABLE runs; --')",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_values_and_keys_reach_sql_only_as_bound_parameters(text: str, dialect: str) -> None:
    compiled = compile_filter(parse_filter(text), dialect)  # type: ignore[arg-type]
    statement = select(runs.c.id).where(compiled.condition)
    engine_dialect = sqlite.dialect() if dialect == "sqlite" else postgresql.psycopg.dialect()
    sql = str(statement.compile(dialect=engine_dialect)).replace("ESCAPE '\\'", "ESCAPE")
    for fragment in ("DROP", "DELETE", "1=1", "--", "'"):
        assert fragment not in sql, sql


def test_like_to_glob() -> None:
    assert like_to_glob("run_%") == "run?*"
    assert like_to_glob("a\\%b\\_c") == "a%b_c"
    assert like_to_glob("x*y?z[w]") == "x[*]y[?]z[[]w]"
    assert like_to_glob("50\\%*") == "50%[*]"


# --- Page tokens ----------------------------------------------------------------------------


def test_page_tokens_round_trip_and_refuse_tampering() -> None:
    sort = compile_order(parse_order_by(["metrics.auc DESC", "start_time"]), "sqlite")
    last = (0.5, datetime(2026, 1, 1, tzinfo=UTC), "ab" * 16)
    token = encode_page_token("f" * 16, sort, last)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+", token)
    assert decode_page_token(token, "f" * 16, sort) == list(last)
    nan_token = encode_page_token("f" * 16, sort, (float("nan"), last[1], last[2]))
    assert str(decode_page_token(nan_token, "f" * 16, sort)[0]) == "nan"
    with pytest.raises(InvalidPageTokenError, match="another search"):
        decode_page_token(token, "0" * 16, sort)
    for bad in ("", "!!!", token[:-5], "a" * 200_000, token.swapcase(), "eyJ2IjogMX0"):
        with pytest.raises(InvalidPageTokenError):
            decode_page_token(bad, "f" * 16, sort)
    import base64
    import json

    def forged(values: list[object]) -> str:
        payload = json.dumps({"v": 1, "q": "f" * 16, "k": values}).encode()
        return base64.urlsafe_b64encode(payload).decode()

    for values in (
        [0.5, "2026-01-01T00:00:00+00:00"],  # too few
        ["x", "2026-01-01T00:00:00+00:00", "id"],  # a metric that is not a number
        [0.5, "2026-01-01T00:00:00", "id"],  # no time zone
        [0.5, None, "id"],  # start_time is never null
        [0.5, "2026-01-01T00:00:00+00:00", 7],  # an id that is not text
        [True, "2026-01-01T00:00:00+00:00", "id"],
    ):
        with pytest.raises(InvalidPageTokenError, match="tampered"):
            decode_page_token(forged(values), "f" * 16, sort)


# --- Fuzzing: nothing but SearchSyntaxError, ever ------------------------------------------------

TOKENS = st.sampled_from(
    [
        "metrics.auc", "params.model", "tags.team", "status", "name", "start_time",
        "end_time", "parent_id", "metrics.`a b`", "attributes.user", "=", "!=", "<", ">=",
        "<>", "like", "ilike", "not", "in", "is", "null", "and", "or", "(", ")", ",",
        "'gbm'", '"x"', "0.8", "-1e3", "7", "'2026-01-01'", "'%a\\_'", "`", "'", ".", "!",
    ]
)  # fmt: skip


def _check_total(text: str) -> None:
    try:
        node = parse_filter(text)
    except SearchSyntaxError as error:
        assert error.message and isinstance(error.hint, str | type(None))
        str(error)
        return
    for dialect, engine in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
        compiled = compile_filter(node, dialect)  # type: ignore[arg-type]
        str(select(runs.c.id).where(compiled.condition).compile(dialect=engine))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_random_text_only_ever_raises_search_syntax_errors(text: str) -> None:
    _check_total(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=14).map(" ".join))
def test_random_token_sequences_only_ever_raise_search_syntax_errors(text: str) -> None:
    _check_total(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=4))
def test_random_orderings_only_ever_raise_search_syntax_errors(clauses: list[str]) -> None:
    try:
        parse_order_by(clauses)
    except SearchSyntaxError:
        pass


def test_search_errors_are_shipyard_errors_with_a_code() -> None:
    error = syntax_error("metrics.a >")
    assert isinstance(error, ShipyardError)
    assert error.code == "SY720"
    assert InvalidPageTokenError("x").code == "SY721"
