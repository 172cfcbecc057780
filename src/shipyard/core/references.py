"""The one reference grammar, parsed in one place.

A reference names a versioned object (dataset, model, feature service, RAG application):

- ``churn``            the object itself (what "latest" means is the caller's choice)
- ``churn@champion``   the version an alias points at
- ``churn@v3``         version number 3
- ``churn@3f9a1c``     the version whose content id starts with ``3f9a1c`` (at least 4 hex
                       characters; ``sha256:`` may prefix it)

Names are 1-128 characters of letters, digits, ``_``, ``-`` and ``.``, starting with a
letter or digit. Aliases are 1-64 letters, digits, ``_`` and ``-`` starting with a letter,
never of the form ``v<digits>`` (that is a version). A word that is also 4+ hex digits
(``cafe``, ``beef``) reads as an id prefix; write ``name@alias:cafe`` to mean the alias.

>>> parse_reference("churn@v3")
Reference(name='churn', kind='version', value='3')
>>> str(parse_reference("churn@champion"))
'churn@champion'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shipyard.core.errors import ReferenceError_

__all__ = ["Reference", "ReferenceKind", "parse_reference", "validate_name"]

ReferenceKind = Literal["latest", "alias", "version", "id"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
_VERSION = re.compile(r"[vV]([0-9]{1,9})")
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{4,64})")
_VERSION_LIKE = re.compile(r"[vV][0-9]*")

_GRAMMAR_HINT = (
    "Write NAME, NAME@ALIAS (e.g. churn@champion), NAME@vN (e.g. churn@v3) "
    "or NAME@ID-PREFIX (at least 4 hex characters, e.g. churn@3f9a1c)."
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference. ``value`` is the alias, the version number, or the id prefix."""

    name: str
    kind: ReferenceKind
    value: str | None = None

    @property
    def version(self) -> int:
        """The version number of a ``name@vN`` reference."""
        if self.kind != "version" or self.value is None:
            raise ReferenceError_(f"Reference '{self}' is not a version number reference.")
        return int(self.value)

    def __str__(self) -> str:
        if self.kind == "latest":
            return self.name
        if self.kind == "version":
            return f"{self.name}@v{self.value}"
        return f"{self.name}@{self.value}"


def _is_alias(text: str) -> bool:
    return _ALIAS.fullmatch(text) is not None and _VERSION_LIKE.fullmatch(text) is None


def validate_name(name: str, *, what: str = "name") -> str:
    """Return ``name`` if it is a valid object name, else raise ``ReferenceError_``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ReferenceError_(
            f"Invalid {what} {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit."
        )
    return name


def parse_reference(text: str) -> Reference:
    """Parse ``name``, ``name@alias``, ``name@vN`` or ``name@<id prefix>``."""
    if not isinstance(text, str):
        raise ReferenceError_(
            f"A reference must be a string, got {type(text).__name__}.", hint=_GRAMMAR_HINT
        )
    text = text.strip()
    if text.count("@") > 1:
        raise ReferenceError_(f"Reference {text!r} has more than one '@'.", hint=_GRAMMAR_HINT)
    name, sep, selector = text.partition("@")
    if not name or not _NAME.fullmatch(name):
        raise ReferenceError_(f"Reference {text!r} has an invalid name.", hint=_GRAMMAR_HINT)
    if not sep:
        return Reference(name, "latest")
    if not selector:
        raise ReferenceError_(f"Reference {text!r} ends with '@'.", hint=_GRAMMAR_HINT)
    if selector.startswith("alias:"):
        alias = selector[len("alias:") :]
        if _is_alias(alias):
            return Reference(name, "alias", alias)
        raise ReferenceError_(f"Reference {text!r} has an invalid alias.", hint=_GRAMMAR_HINT)
    if match := _VERSION.fullmatch(selector):
        number = int(match.group(1))
        if number < 1:
            raise ReferenceError_(
                f"Reference {text!r}: versions are numbered from 1.", hint=_GRAMMAR_HINT
            )
        return Reference(name, "version", str(number))
    if match := _ID_PREFIX.fullmatch(selector):
        return Reference(name, "id", match.group(1))
    if _is_alias(selector):
        return Reference(name, "alias", selector)
    raise ReferenceError_(
        f"Reference {text!r}: {selector!r} is neither an alias, a version nor an id prefix.",
        hint=_GRAMMAR_HINT,
    )
