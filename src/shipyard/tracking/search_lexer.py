"""The tokens of the run search language, and the error that points into a filter.

``tokenize`` turns a filter or ordering clause into tokens that keep their position, so
every later error can quote the text and put a caret under the offending token. See
``shipyard.tracking.search`` for the grammar.

>>> [token.text for token in tokenize("metrics.auc >= 0.8", "filter")]
['metrics.auc', '>=', '0.8', '']
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from shipyard.core.errors import ShipyardError

__all__ = [
    "BARE_KEY",
    "FIELD_PREFIXES",
    "FILTER_HINT",
    "KEYWORDS",
    "MAX_TEXT_LENGTH",
    "ORDER_HINT",
    "SearchSyntaxError",
    "Token",
    "TokenKind",
    "check_text",
    "describe",
    "syntax_error",
    "tokenize",
]

MAX_TEXT_LENGTH = 100_000
"""Characters in a filter or ordering clause; longer ones are refused before parsing."""

FIELD_PREFIXES = frozenset(
    {
        "metrics",
        "metric",
        "params",
        "param",
        "parameters",
        "tags",
        "tag",
        "attributes",
        "attribute",
        "attr",
    }
)
KEYWORDS = frozenset({"and", "or", "not", "in", "like", "ilike", "is", "null", "asc", "desc"})
BARE_KEY = re.compile(r"[\w\-./]+")
"""A key that needs no quotes: letters, digits, ``_``, ``-``, ``.`` and ``/``."""
FILTER_HINT = (
    "Write comparisons like metrics.auc > 0.8, params.model = 'gbm' or status = 'finished', "
    "joined by and / or, with parentheses."
)
_OPERATORS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "`": "`", "n": "\n", "t": "\t", "r": "\r"}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"\s+")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates: no database takes them
ORDER_HINT = "Order by a field and an optional direction: 'metrics.auc DESC', 'name'."


class SearchSyntaxError(ShipyardError):
    """A run filter or ordering is malformed; the message points at the offending token.

    ``position`` is the 1-based character position in ``text`` (``None`` when the whole
    text is at fault); ``str(error)`` adds the text with a caret line under the token.
    """

    code = "SY720"

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        position: int | None = None,
        width: int = 1,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.text = text
        self.position = position
        self.width = max(1, width)

    def caret_lines(self) -> str:
        """The text (a window of it, if long) and a caret line under the offending token."""
        if self.position is None or not self.text:
            return ""
        start = self.position - 1
        window = _window(self.text, start, self.width)
        offset = start - max(0, start - 40) + (3 if start > 40 else 0)
        caret = " " * offset + "^" * max(1, min(self.width, len(self.text) - start, 80))
        return f"  {window}\n  {caret}"

    def __str__(self) -> str:
        lines = [self.message]
        if caret := self.caret_lines():
            lines.append(caret)
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


TokenKind = Literal["word", "field", "string", "number", "op", "(", ")", ",", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # as written
    position: int  # 0-based
    value: str = ""  # decoded string; lower-cased word; key of a field
    prefix: str = ""  # the prefix word of a field


def tokenize(text: str, what: str) -> Iterator[Token]:
    """The tokens of ``text``, lazily (so that errors come in text order), then ``end``."""
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char.isspace():
            match = _SPACE.match(text, position)
            position = match.end() if match else position + 1
            continue
        if char in "(),":
            yield Token(char, char, position)  # type: ignore[arg-type]
            position += 1
        elif char in "<>=!":
            end = position
            while end < length and text[end] in "<>=!":
                end += 1
            operator = text[position:end]
            if operator not in _OPERATORS:
                raise syntax_error(
                    f"'{operator}' is not a comparison operator",
                    text,
                    what,
                    position,
                    len(operator),
                    hint="Use one of = != < <= > >= like ilike in, not in, is null.",
                )
            yield Token("op", operator, position, operator)
            position = end
        elif char in "'\"":
            value, end = _read_quoted(text, position, what)
            yield Token("string", text[position:end], position, value)
            position = end
        elif char.isdigit() or (char in "+-." and _NUMBER.match(text, position)):
            match = _NUMBER.match(text, position)
            end = match.end() if match else position + 1
            if end < length and (text[end].isalnum() or text[end] in "_."):
                while end < length and (text[end].isalnum() or text[end] in "_."):
                    end += 1
                raise syntax_error(
                    f"Malformed number '{text[position:end]}'",
                    text,
                    what,
                    position,
                    end - position,
                    hint="Numbers look like 3, -0.5, 1e-3; quote text values: 'abc'.",
                )
            yield Token("number", text[position:end], position, text[position:end])
            position = end
        elif _WORD.match(text, position):
            word = _read_word(text, position, what)
            yield word
            position = word.position + len(word.text)
        else:
            raise syntax_error(
                f"Unexpected character {_show_char(char)}", text, what, position, hint=FILTER_HINT
            )
    yield Token("end", "", length)


def _read_word(text: str, position: int, what: str) -> Token:
    match = _WORD.match(text, position)
    assert match is not None  # noqa: S101 - the caller matched it
    word = match.group()
    end = match.end()
    if end >= len(text) or text[end] != ".":
        return Token("word", word, position, word.lower())
    prefix = word.lower()
    if prefix not in FIELD_PREFIXES:
        options = sorted({"metrics", "params", "tags", "attributes"})
        close = difflib.get_close_matches(prefix, options, n=1)
        raise syntax_error(
            f"Unknown field prefix '{word}'",
            text,
            what,
            position,
            end - position,
            hint=(f"Did you mean '{close[0]}'? " if close else "")
            + "Use metrics.<key>, params.<key>, tags.<key> or a run attribute.",
        )
    key_start = end + 1
    if key_start < len(text) and text[key_start] in "`\"'":
        key, key_end = _read_quoted(text, key_start, what)
    else:
        key_match = BARE_KEY.match(text, key_start)
        if key_match is None:
            raise syntax_error(
                f"'{word}.' is not followed by a key",
                text,
                what,
                key_start if key_start < len(text) else position,
                hint="Write the key after the dot, e.g. metrics.auc; quote keys with spaces: "
                "metrics.`val loss`.",
            )
        key, key_end = key_match.group(), key_match.end()
    if not key:
        raise syntax_error(
            "Empty key", text, what, key_start, key_end - key_start, hint=FILTER_HINT
        )
    return Token("field", text[position:key_end], position, key, prefix)


def _read_quoted(text: str, start: int, what: str) -> tuple[str, int]:
    """Decode the quoted string (or back-quoted key) at ``start``; return it and its end."""
    quote = text[start]
    parts: list[str] = []
    position = start + 1
    length = len(text)
    while position < length:
        char = text[position]
        if char == quote:
            if position + 1 < length and text[position + 1] == quote:  # doubled quote
                parts.append(quote)
                position += 2
                continue
            return "".join(parts), position + 1
        if char == "\\" and position + 1 < length:
            escaped = text[position + 1]
            # Unknown escapes stay as written: '\%' reaches a like pattern as an escape.
            parts.append(_ESCAPES.get(escaped, "\\" + escaped))
            position += 2
            continue
        parts.append(char)
        position += 1
    raise syntax_error(
        f"Unterminated {'key' if quote == '`' else 'string'} starting with {quote}",
        text,
        what,
        start,
        hint=f"Close it with a matching {quote}.",
    )


def check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise SearchSyntaxError(
            f"A {what} must be a string, not {type(text).__name__}.",
            hint=FILTER_HINT if what == "filter" else ORDER_HINT,
        )
    if len(text) > MAX_TEXT_LENGTH:
        raise SearchSyntaxError(
            f"The {what} is {len(text):,} characters long; the limit is {MAX_TEXT_LENGTH:,}.",
            hint="Split the search into several.",
        )
    if bad := _UNSTORABLE.search(text):
        raise syntax_error(
            f"The {what} contains {_show_char(bad.group())}, which cannot be stored as text",
            text,
            what,
            bad.start(),
            hint="Remove it.",
        )
    return text


def syntax_error(
    message: str,
    text: str,
    what: str,
    position: int | None,
    width: int = 1,
    *,
    hint: str | None = None,
) -> SearchSyntaxError:
    if position is None:
        shown = f": {_window(text, 0, 0)}" if text.strip() else " (it is empty)"
        return SearchSyntaxError(f"{message} in {what}{shown}.", text=text, hint=hint)
    return SearchSyntaxError(
        f"{message} at position {position + 1} in {what}: {_window(text, position, width)}",
        text=text,
        position=position + 1,
        width=width,
        hint=hint,
    )


def _window(text: str, start: int, width: int, margin: int = 40) -> str:
    """Up to ``margin`` characters either side of a token, printable, on one line."""
    left = max(0, start - margin)
    right = min(len(text), start + max(width, 1) + margin)
    shown = "".join(char if char.isprintable() else " " for char in text[left:right])
    return ("..." if left else "") + shown + ("..." if right < len(text) else "")


def describe(token: Token) -> str:
    if token.kind == "word":
        return f"word '{token.text}'"
    if token.kind in ("string", "number"):
        return f"{token.kind} {_window(token.text, 0, 0, 40)}"
    return f"'{token.text}'"


def _show_char(char: str) -> str:
    return repr(char) if char.isprintable() else f"U+{ord(char):04X}"
