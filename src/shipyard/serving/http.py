"""The HTTP plumbing of the service: errors as JSON, bodies, request ids, responses.

Kept apart from the routes (``app.py``): nothing here knows about models. Bodies are read
with a size limit (413 before reading when ``Content-Length`` says so, else while
streaming), JSON is parsed by the standard library with ``NaN``/``Infinity`` refused, and
every refusal is an :class:`HttpError` carrying a JSON body that names what to fix.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

__all__ = [
    "JSON_HEADER",
    "TEXT_HEADER",
    "ClientGone",
    "HttpError",
    "headers_of",
    "parse_records",
    "read_body",
    "request_id_of",
    "respond",
    "send_body",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON_HEADER = (b"content-type", b"application/json")
TEXT_HEADER = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
_MAX_REQUEST_ID = 128


class HttpError(Exception):
    """An answer other than 200, with a JSON body ``{"error", "message", ...}``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        hint: str | None = None,
        detail: list[dict[str, Any]] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "message": message}
        if hint:
            self.body["hint"] = hint
        if detail is not None:
            self.body["detail"] = detail
        self.headers = headers or []


class ClientGone(Exception):
    """The client went away before its body arrived."""

    pass


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _valid_request_id(text: str) -> bool:
    return 0 < len(text) <= _MAX_REQUEST_ID and all(
        char.isascii() and (char.isalnum() or char in "-_.:") for char in text
    )


def request_id_of(headers: Mapping[bytes, bytes]) -> str:
    """The ``X-Request-ID`` header (checked), or a new random id."""
    raw = headers.get(b"x-request-id")
    if raw is None:
        return uuid.uuid4().hex
    text = raw.decode("latin-1").strip()
    if not _valid_request_id(text):
        raise HttpError(
            400,
            "bad_request_id",
            f"X-Request-ID must be 1 to {_MAX_REQUEST_ID} letters, digits, '-', '_', '.' or ':'.",
            hint="Send a UUID, or leave the header out to get one.",
        )
    return text


async def read_body(receive: Receive, headers: Mapping[bytes, bytes], limit: int) -> bytes:
    """The body, refused (413) past ``limit`` bytes and (415) when it is not JSON."""
    content_type = headers.get(b"content-type")
    if content_type is not None and b"json" not in content_type.lower():
        raise HttpError(
            415,
            "unsupported_media_type",
            f"The body is {content_type.decode('latin-1')[:60]!r}; send application/json.",
        )
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(
            413,
            "body_too_large",
            f"The body is {int(declared)} bytes; the limit is {limit}.",
            hint="Send fewer records per request.",
        )
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(
                413,
                "body_too_large",
                f"The body exceeds {limit} bytes.",
                hint="Send fewer records per request.",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_records(body: bytes, max_records: int) -> tuple[list[Any], bool]:
    """The records of ``{"inputs": ...}`` and whether it was one record (not a batch)."""
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise HttpError(
            400,
            "malformed_json",
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            hint='Send {"inputs": {...}} or {"inputs": [{...}, ...]}.',
        ) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise HttpError(
            400,
            "malformed_json",
            f"The body is not valid JSON: {str(exc)[:200]}.",
            hint="Send UTF-8 JSON; NaN and Infinity are not JSON.",
        ) from None
    if type(payload) is not dict or "inputs" not in payload:
        raise HttpError(
            422,
            "validation_failed",
            'The body must be a JSON object with an "inputs" field.',
            hint='Send {"inputs": {...}} for one record or {"inputs": [...]} for a batch.',
            detail=[{"field": "inputs", "rule": "required", "message": "inputs is missing"}],
        )
    if len(payload) > 1:
        extra = sorted(str(key)[:60] for key in payload if key != "inputs")
        raise HttpError(
            422,
            "validation_failed",
            f"Unknown top-level field(s): {', '.join(extra)}.",
            detail=[
                {"field": key, "rule": "unknown_field", "message": f"{key!r} is not allowed"}
                for key in extra
            ],
        )
    inputs = payload["inputs"]
    if type(inputs) is dict:
        return [inputs], True
    if type(inputs) is list:
        if not inputs:
            raise HttpError(
                422,
                "validation_failed",
                "inputs is an empty array.",
                detail=[
                    {
                        "field": "inputs",
                        "rule": "min_items",
                        "message": "send at least one record",
                    }
                ],
            )
        if len(inputs) > max_records:
            raise HttpError(
                413,
                "too_many_records",
                f"The batch has {len(inputs)} records; the limit is {max_records}.",
                hint="Split it into smaller batches.",
            )
        return inputs, False
    raise HttpError(
        422,
        "validation_failed",
        "inputs must be an object (one record) or an array of objects (a batch).",
        detail=[{"field": "inputs", "rule": "type", "message": "expected object or array"}],
    )


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


async def respond(
    send: Send,
    status: int,
    payload: Any,
    request_id: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [JSON_HEADER]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    if extra:
        headers.extend(extra)
    await send_body(send, status, json.dumps(payload, default=str).encode(), headers)


async def send_body(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
