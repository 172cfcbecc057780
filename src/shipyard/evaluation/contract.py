"""Which rows serving would reject, and why: the compiled serving contract, asked per row.

The robustness gate calls a row "rejected by the contract" exactly when the HTTP service
would answer it with a 422: both ask :class:`shipyard.models.contract.Contract`, and the
reason is the service's own messages (each names the field and the broken rule). Only
declared rules reject (a field's type and nullability, a missing input, the data
contract's ``min``, ``max``, ``allowed``, ``regex``, ``min_length``, ``max_length``);
what training observed (``FieldSpec.observed``) never does. Rows are dicts of values as
a request carries them, or as Arrow's ``to_pylist`` gives them.

>>> rejected_rows(signature, [{"tenure": 3}, {"tenure": None}])
{1: 'tenure is null; it must have a value'}
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from shipyard.models.contract import Contract, FieldError, value_kind
from shipyard.models.records import FieldSpec, Signature

__all__ = ["field_kind", "rejected_rows", "row_errors", "row_problem"]

_KINDS = {"timestamp": "time", "date": "time", "any": "other"}


def field_kind(spec: FieldSpec) -> str:
    """``int``, ``float``, ``bool``, ``string``, ``time`` or ``other``: the contract's
    reading of the field's Arrow type, as the probes choose hostile values by it."""
    kind = value_kind(spec.type)
    return _KINDS.get(kind, kind)


class _LastContract(threading.local):
    """The contract of the last signature asked about, per thread: the gate asks about
    one signature row after row, and compiling it once per row would be waste."""

    signature: Signature | None = None
    contract: Contract | None = None


_last = _LastContract()


def _contract(signature: Signature) -> Contract:
    contract = _last.contract
    if contract is None or _last.signature is not signature:
        contract = Contract(signature)
        _last.contract, _last.signature = contract, signature
    return contract


def row_errors(signature: Signature, row: Any) -> list[FieldError]:
    """Every rule of ``signature`` that ``row`` breaks, as serving reports them."""
    return _contract(signature).check(row, None)[1]


def row_problem(signature: Signature, row: Any) -> str | None:
    """Why serving rejects ``row`` (its error messages, joined), or None when it accepts."""
    errors = row_errors(signature, row)
    return "; ".join(error.message for error in errors) if errors else None


def rejected_rows(signature: Signature, rows: Sequence[Any]) -> dict[int, str]:
    """Index -> reason for every row of ``rows`` that serving rejects."""
    contract = _contract(signature)
    problems: dict[int, str] = {}
    for index, row in enumerate(rows):
        errors = contract.check(row, index)[1]
        if errors:
            problems[index] = "; ".join(error.message for error in errors)
    return problems
