from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.core.errors import ReferenceError_, ShipyardError
from shipyard.core.references import Reference, parse_reference, validate_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", Reference("churn", "latest")),
        ("churn@champion", Reference("churn", "alias", "champion")),
        ("churn@v3", Reference("churn", "version", "3")),
        ("churn@V12", Reference("churn", "version", "12")),
        ("churn@3f9a1c", Reference("churn", "id", "3f9a1c")),
        ("churn@sha256:3f9a1c", Reference("churn", "id", "3f9a1c")),
        ("churn@cafe", Reference("churn", "id", "cafe")),
        ("churn@alias:cafe", Reference("churn", "alias", "cafe")),
        ("my.model-2_x@challenger", Reference("my.model-2_x", "alias", "challenger")),
        ("  churn@v1  ", Reference("churn", "version", "1")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@v1",
        "churn@",
        "churn@@v1",
        "a@b@c",
        "churn@v0",
        "-churn",
        "churn@has space",
        "x" * 129,
        "churn@alias:",
        "churn@alias:1abc",
        "churn@v",
        "ch urn",
        "churn@' OR 1=1 --",
        "churn@v99999999999",
    ],
)
def test_bad_references_are_rejected_with_the_grammar(text: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        parse_reference(text)
    assert "NAME@ALIAS" in str(info.value)
    assert isinstance(info.value, ShipyardError)


def test_non_string_reference() -> None:
    with pytest.raises(ReferenceError_, match="must be a string"):
        parse_reference(42)  # type: ignore[arg-type]


def test_version_property() -> None:
    assert parse_reference("m@v7").version == 7
    with pytest.raises(ReferenceError_):
        _ = parse_reference("m@champion").version


@given(
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True),
    number=st.integers(min_value=1, max_value=10**6),
    alias=st.from_regex(r"[g-z][A-Za-z0-9_\-]{0,10}", fullmatch=True).filter(
        lambda a: not (a[0] in "vV" and a[1:].isdigit() or a in ("v", "V"))
    ),
)
def test_round_trip(name: str, number: int, alias: str) -> None:
    for reference in (Reference(name, "version", str(number)), Reference(name, "alias", alias)):
        assert parse_reference(str(reference)) == reference


def test_validate_name() -> None:
    assert validate_name("churn-v2.model") == "churn-v2.model"
    with pytest.raises(ReferenceError_, match="Invalid project name"):
        validate_name("../etc/passwd", what="project name")
