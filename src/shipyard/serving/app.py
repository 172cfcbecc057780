"""The model service: a raw ASGI application, lean on the request path.

Routes::

    POST /v1/models/{name}/predict   {"inputs": {...}} one record, {"inputs": [{...}, ...]} a batch
    GET  /v1/models                  what is served: versions, canary share, shadow
    GET  /openapi.json               generated from each model's signature
    GET  /healthz                    the process answers
    GET  /readyz                     200 once every model is loaded and warmed up, else 503
    GET  /metrics                    Prometheus text format

One request, in order: API key (``X-API-Key`` or ``Authorization: Bearer``, compared in
constant time), body size (413), JSON (400; ``NaN``/``Infinity`` refused), shape and
contract of every record (422, each error naming record, field and rule; values outside
what training saw are accepted and flagged), the arm (canary share, sticky), online
features for records that carry entity keys, the model call through the micro-batcher,
the answer, then the prediction log record queued (written by another thread) and a
shadow call scheduled after the answer is sent. No client mistake produces a 5xx.

A model call that raises on records the contract accepted is logged as failed (the arm's
error rate counts it) and answered by who can fix it: 422 ``model_error`` when the model
refuses the values (``ValueError``, ``TypeError``, ``KeyError``; the field and record
named when its message points at them), 500 ``model_failed`` for any other exception (a
fault of the model: the body names the version, the exception class and the request id;
the traceback goes to the service's log only).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shipyard.core.errors import DataContractError, ModelError, ShipyardError
from shipyard.models.failures import InputRejected
from shipyard.monitoring.prediction_log import (
    PredictionLogWriter,
    PredictionRecord,
    log_failed_call,
)
from shipyard.serving.contract import FieldError
from shipyard.serving.http import (
    JSON_HEADER,
    TEXT_HEADER,
    ClientGone,
    HttpError,
    Receive,
    Scope,
    Send,
    headers_of,
    parse_records,
    read_body,
    request_id_of,
    respond,
    send_body,
)
from shipyard.serving.metrics import Metrics
from shipyard.serving.openapi import openapi_document
from shipyard.serving.runtime import Arm, Deployment, ServedModel
from shipyard.serving.settings import ServingSettings

__all__ = ["ModelService"]

_log = logging.getLogger("shipyard.serving")
_PREFIX = "/v1/models/"
_SUFFIX = "/predict"


class ModelService:
    """The ASGI application. Build it with :func:`shipyard.serving.server.create_service`.

    ``models`` maps each served name to its :class:`ServedModel` (deployments installed
    by the loader); ``lookup`` (optional) fills online features for records that carry
    entity keys; ``writer`` receives the prediction log records.
    """

    def __init__(
        self,
        models: Mapping[str, ServedModel],
        *,
        settings: ServingSettings,
        metrics: Metrics,
        writer: PredictionLogWriter | None,
        lookups: Mapping[str, Any] | None = None,
        on_startup: Callable[[], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.models = models
        self.settings = settings
        self.metrics = metrics
        self.writer = writer
        self.lookups = dict(lookups or {})
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._api_key = settings.api_key.encode() if settings.api_key else None
        self._openapi: tuple[tuple[int, ...], bytes] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.ready = False
        self.load_error: str | None = None

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._on_startup is not None:
                        self._on_startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if self._on_shutdown is not None:
                        self._on_shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        request_id = ""
        started = time.perf_counter()
        model = "-"
        try:
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                model = path[len(_PREFIX) : -len(_SUFFIX)]
                if method != "POST":
                    raise HttpError(
                        405,
                        "method_not_allowed",
                        f"Use POST on {path}.",
                        headers=[(b"allow", b"POST")],
                    )
                headers = headers_of(scope)
                request_id = request_id_of(headers)
                self._authorize(headers)
                served = self.models.get(model)
                if served is None:
                    model = "-"
                    raise HttpError(
                        404,
                        "unknown_model",
                        f"No model named {path[len(_PREFIX) : -len(_SUFFIX)]!r} is served here.",
                        hint=f"Served: {', '.join(sorted(self.models)) or 'none'} "
                        "(GET /v1/models lists them).",
                    )
                body = await read_body(receive, headers, self.settings.max_body_bytes)
                status, payload = await self._predict(served, body, request_id, started)
                await respond(send, status, payload, request_id)
                self.metrics.requests.inc((model, str(status)))
                self.metrics.request_seconds.observe((model,), time.perf_counter() - started)
                return
            if method not in ("GET", "HEAD"):
                raise HttpError(
                    405 if path in _GET_ROUTES else 404,
                    "not_found",
                    f"No route {method} {path}.",
                    hint="See GET /openapi.json.",
                )
            await self._get(path, scope, send)
        except HttpError as error:
            if error.status >= 400:
                self.metrics.errors.inc((model, error.body["error"]))
            self.metrics.requests.inc((model, str(error.status)))
            await respond(send, error.status, error.body, request_id, error.headers)
        except ClientGone:
            self.metrics.errors.inc((model, "client_disconnected"))
        except Exception:
            _log.exception("internal error on %s %s", method, path)
            self.metrics.errors.inc((model, "internal"))
            self.metrics.requests.inc((model, "500"))
            await respond(
                send,
                500,
                {"error": "internal", "message": "Internal error; it is in the service's log."},
                request_id,
            )

    # --- GET routes --------------------------------------------------------------------------

    async def _get(self, path: str, scope: Scope, send: Send) -> None:
        if path == "/healthz":
            await respond(send, 200, {"status": "ok"}, "")
        elif path == "/readyz":
            if self.ready:
                await respond(send, 200, {"status": "ready"}, "")
            else:
                body: dict[str, Any] = {"status": "loading"}
                if self.load_error:
                    body = {"status": "failed", "message": self.load_error}
                await respond(send, 503, body, "", [(b"retry-after", b"1")])
        elif path == "/metrics":
            await send_body(send, 200, self.metrics.render().encode(), [TEXT_HEADER])
        elif path == "/openapi.json":
            await send_body(send, 200, self._openapi_bytes(), [JSON_HEADER])
        elif path == "/v1/models":
            self._authorize(headers_of(scope))
            await respond(send, 200, {"models": self.describe()}, "")
        else:
            raise HttpError(404, "not_found", f"No route GET {path}.", hint="See /openapi.json.")

    def describe(self) -> list[dict[str, Any]]:
        """What is served: name, reference, the versions of each arm and the split."""
        out = []
        for name, served in sorted(self.models.items()):
            entry: dict[str, Any] = {"name": name, "reference": str(served.reference)}
            deployment = served.deployment
            if deployment is not None:
                entry["arms"] = [
                    {"arm": role, "version": arm.version.number, "version_id": arm.version.id}
                    for role, arm in deployment.arms()
                ]
                if deployment.canary is not None:
                    entry["canary_share"] = deployment.canary_share
                    entry["sticky_by"] = deployment.sticky_by
            if served.error:
                entry["error"] = served.error
            out.append(entry)
        return out

    def _openapi_bytes(self) -> bytes:
        deployments = [served.deployment for served in self.models.values()]
        key = tuple(id(d.champion) if d is not None else 0 for d in deployments)
        if self._openapi is None or self._openapi[0] != key:
            contracts = {
                name: (served.deployment.champion.contract, served.deployment.champion.task)
                for name, served in self.models.items()
                if served.deployment is not None
            }
            document = openapi_document(
                contracts, max_records=self.settings.max_records, api_key=bool(self._api_key)
            )
            self._openapi = (key, json.dumps(document).encode())
        return self._openapi[1]

    # --- The predict path ---------------------------------------------------------------------

    def _authorize(self, headers: Mapping[bytes, bytes]) -> None:
        if self._api_key is None:
            return
        given = headers.get(b"x-api-key")
        if given is None:
            authorization = headers.get(b"authorization", b"")
            if authorization[:7].lower() == b"bearer ":
                given = authorization[7:].strip()
        if given is None or not hmac.compare_digest(given, self._api_key):
            raise HttpError(
                401,
                "unauthorized",
                "Missing or wrong API key." if given is not None else "Missing API key.",
                hint="Send it in the X-API-Key header (or Authorization: Bearer KEY).",
                headers=[(b"www-authenticate", b'Bearer realm="shipyard"')],
            )

    async def _predict(
        self, served: ServedModel, body: bytes, request_id: str, started: float
    ) -> tuple[int, dict[str, Any]]:
        deployment = served.deployment
        if not self.ready or deployment is None:
            raise HttpError(
                503,
                "not_ready",
                f"Model {served.reference} is still loading.",
                hint="Retry when GET /readyz answers 200.",
                headers=[(b"retry-after", b"1")],
            )
        records, single = parse_records(body, self.settings.max_records)
        ids = [request_id] if single else [f"{request_id}:{i}" for i in range(len(records))]
        lookup = self.lookups.get(served.name)
        entity_keys: list[dict[str, Any] | None] = (
            [lookup.entity_key(record) for record in records]
            if lookup is not None
            else [None] * len(records)
        )
        # Route each record, then validate it against its arm's contract.
        groups: dict[int, tuple[str, Arm, list[int]]] = {}
        for index, key in enumerate(entity_keys):
            role, arm = deployment.route(_key_text(key), ids[index])
            group = groups.get(id(arm))
            if group is None:
                groups[id(arm)] = (role, arm, [index])
            else:
                group[2].append(index)
        rows: list[dict[str, Any]] = [{}] * len(records)
        flags: list[list[dict[str, Any]]] = [[] for _ in records]
        errors: list[FieldError] = []
        for _, arm, indexes in groups.values():
            contract = arm.contract
            for index in indexes:
                row, problems, found = contract.check(records[index], None if single else index)
                rows[index] = row
                if problems:
                    errors.extend(problems)
                if found:
                    flags[index] = found
        if errors:
            errors.sort(key=lambda error: error.record or 0)
            shown = errors[:100]
            raise HttpError(
                422,
                "validation_failed",
                f"{len(errors)} value(s) break the contract of {served.name}: "
                + "; ".join(error.message for error in shown[:3])
                + ("..." if len(errors) > 3 else ""),
                detail=[error.as_json() for error in shown],
            )
        features: list[dict[str, Any] | None] = [None] * len(records)
        if lookup is not None:
            try:
                missing = lookup.fill(rows, entity_keys, features)
            except ShipyardError as exc:
                raise HttpError(422, "feature_lookup_failed", exc.message, hint=exc.hint) from None
            if missing:
                raise HttpError(
                    422,
                    "feature_missing",
                    f"The online store has no value of {missing[0].field!r} for "
                    f"{missing[0].entity} ({missing[0].status}), and the model needs one.",
                    hint="Send the value in the record, or materialize the feature view.",
                    detail=[
                        {
                            **({} if single else {"record": item.record}),
                            "field": item.field,
                            "rule": f"feature_{item.status}",
                            "message": f"no online value for {item.entity} ({item.status})",
                        }
                        for item in missing[:100]
                    ],
                )
        # Score each arm's records (concurrently: each through its own batcher).
        answers: list[dict[str, Any]] = [{}] * len(records)
        roles: list[str] = [""] * len(records)
        arms: list[Arm] = [deployment.champion] * len(records)
        for role, arm, indexes in groups.values():
            try:
                prediction, start, _ = await arm.batcher.submit([rows[i] for i in indexes])
            except Exception as exc:
                # The model failed: logged without a score, so the arm's error rate counts it.
                log_failed_call(
                    self.writer,
                    exc,
                    model=served.name,
                    alias=served.alias,
                    arm=role,
                    version=arm.version,
                    request_ids=[ids[i] for i in indexes],
                    inputs=[records[i] for i in indexes],
                    started=started,
                )
                raise _model_failure(exc, served.name, arm, indexes, single, request_id) from None
            outputs = arm.outputs(prediction, start, start + len(indexes))
            for index, output in zip(indexes, outputs, strict=True):
                answers[index] = output
                roles[index] = role
                arms[index] = arm
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        results = []
        writer = self.writer
        flagged = self.metrics.flagged
        for index, output in enumerate(answers):
            arm = arms[index]
            version = arm.version
            result = {
                "request_id": ids[index],
                "model": served.name,
                "version": version.number,
                "arm": roles[index],
                **output,
                "flags": flags[index],
            }
            results.append(result)
            for flag in flags[index]:
                flagged.inc((served.name, flag["field"]))
            if writer is not None:
                writer.log(
                    PredictionRecord(
                        request_id=ids[index],
                        arm=roles[index],
                        model=served.name,
                        version=version.number,
                        version_id=version.id,
                        alias=served.alias,
                        inputs=records[index],
                        score=output.get("score")
                        if not isinstance(output.get("score"), str)
                        else None,
                        latency_ms=latency_ms,
                        scores=output.get("scores"),
                        label=output.get("label"),
                        threshold=output.get("threshold"),
                        entity_keys=entity_keys[index],
                        features=features[index],
                        flags=flags[index],
                        logged_at=now,
                    )
                )
        if deployment.shadow is not None:
            self._shadow(served, deployment, records, rows, ids, entity_keys, features)
        if single:
            return 200, results[0]
        return 200, {"predictions": results}

    def _shadow(
        self,
        served: ServedModel,
        deployment: Deployment,
        records: list[Any],
        rows: list[dict[str, Any]],
        ids: list[str],
        entity_keys: list[dict[str, Any] | None],
        features: list[dict[str, Any] | None],
    ) -> None:
        """Score a copy of the request with the shadow version after the answer; log only."""
        shadow = deployment.shadow
        assert shadow is not None  # noqa: S101 - checked by the caller

        async def run() -> None:
            started = time.perf_counter()
            shadow_rows = []
            kept = []
            for index, record in enumerate(records):
                row, problems, _ = shadow.contract.check(record, index)
                if problems:
                    continue
                row.update({k: v for k, v in rows[index].items() if k not in row})
                shadow_rows.append(row)
                kept.append(index)
            if not shadow_rows:
                self.metrics.errors.inc((served.name, "shadow_contract"))
                return
            try:
                prediction, start, _ = await shadow.batcher.submit(shadow_rows)
            except Exception:
                self.metrics.errors.inc((served.name, "shadow_model"))
                return
            latency_ms = (time.perf_counter() - started) * 1000.0
            outputs = shadow.outputs(prediction, start, start + len(shadow_rows))
            if self.writer is None:
                return
            version = shadow.version
            for index, output in zip(kept, outputs, strict=True):
                self.writer.log(
                    PredictionRecord(
                        request_id=ids[index],
                        arm="shadow",
                        model=served.name,
                        version=version.number,
                        version_id=version.id,
                        alias=served.alias,
                        inputs=records[index],
                        score=output.get("score"),
                        latency_ms=latency_ms,
                        scores=output.get("scores"),
                        label=output.get("label"),
                        threshold=output.get("threshold"),
                        entity_keys=entity_keys[index],
                        features=features[index],
                    )
                )

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


_GET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/models"})


def _model_failure(
    error: Exception, name: str, arm: Arm, indexes: list[int], single: bool, request_id: str
) -> HttpError:
    """The answer to a model call that raised ``error`` on records that passed the
    contract: 422 ``model_error`` when the model refused them (``DataContractError``,
    ``ValueError``, ``TypeError``, ``KeyError``: the client can change them), else 500
    ``model_failed`` (a fault of the model or the machine; its traceback is logged here,
    never sent). ``indexes`` are the request's records that were in the failing call."""
    version = arm.version
    if isinstance(error, DataContractError | ValueError | TypeError | KeyError):
        detail = None
        if isinstance(error, InputRejected):
            cause = error.__cause__ or error
            raised = f"{type(cause).__name__}: {str(cause)[:300]}"
            where = "the input"
            if error.column is not None:
                row = error.row
                record = indexes[row] if row is not None and row < len(indexes) else None
                where = f"the value of {error.column!r}"
                entry: dict[str, Any] = {
                    "field": error.column,
                    "rule": "model_rejected",
                    "message": f"model {version.reference} cannot take this value",
                }
                if record is not None and not single:
                    where += f" in record {record}"
                    entry = {"record": record, **entry}
                detail = [entry]
            message = f"Model {version.reference} cannot take {where}: it raised {raised}"
        elif isinstance(error, ShipyardError):
            message = error.message[:400]
        else:
            message = (
                f"Model {version.reference} could not score the input: "
                f"{type(error).__name__}: {str(error)[:300]}"
            )
        return HttpError(
            422,
            "model_error",
            message,
            hint="The values pass the contract but the model cannot take them (a missing "
            "value, a category or magnitude training never saw). Send values like those "
            "training saw.",
            detail=detail,
        )
    cause = error.__cause__ if isinstance(error, ModelError) and error.__cause__ else error
    exception = type(cause).__name__
    _log.error(
        "model %s (%s) failed on request %s: %s",
        name,
        version.reference,
        request_id,
        exception,
        exc_info=error,
    )
    failure = HttpError(
        500,
        "model_failed",
        f"Model {version.reference} failed on this request ({exception}). The request "
        "passed the contract: the fault is the model's, not the request's.",
        hint="Retrying will likely fail the same way. Report the request id to the service's "
        "operators: the traceback is in its log, under that id.",
    )
    failure.body.update(
        {
            "model": name,
            "version": version.number,
            "version_id": version.id,
            "exception": exception,
            "request_id": request_id,
        }
    )
    return failure


def _key_text(key: Mapping[str, Any] | None) -> str | None:
    if not key:
        return None
    return "|".join(f"{name}={value}" for name, value in sorted(key.items()))
