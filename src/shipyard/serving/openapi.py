"""The service's OpenAPI 3.1 document, generated from each served model's signature.

Each model gets ``POST /v1/models/{name}/predict`` with a request schema whose record is
the signature's inputs (types, declared rules as ``minimum``/``maximum``/``enum``/
``pattern``/lengths, required non-null fields, no other properties) and the response
and error shapes the service really sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard._version import __version__
from shipyard.serving.contract import Contract, json_schema_of, sample_record

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "hint": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "rule", "message"],
                "properties": {
                    "record": {"type": "integer"},
                    "field": {"type": "string"},
                    "rule": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def _record_schema(contract: Contract) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in contract.specs.items():
        properties[name] = json_schema_of(spec)
        if name not in contract.optional:
            required.append(name)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _prediction_schema(task: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "request_id": {"type": "string"},
        "model": {"type": "string"},
        "version": {"type": "integer"},
        "arm": {"type": "string", "enum": ["champion", "canary"]},
        "score": {"type": ["number", "null"]},
        "flags": {"type": "array", "items": {"type": "object"}},
    }
    if task in ("binary_classification", "multiclass_classification"):
        properties["label"] = {}
    if task == "binary_classification":
        properties["threshold"] = {"type": ["number", "null"]}
    if task == "multiclass_classification":
        properties["scores"] = {"type": "array", "items": {"type": "number"}}
    return {
        "type": "object",
        "required": ["request_id", "model", "version", "arm"],
        "properties": properties,
    }


def openapi_document(
    contracts: Mapping[str, tuple[Contract, str]], *, max_records: int, api_key: bool
) -> dict[str, Any]:
    """The document for ``{model name: (champion contract, task)}``."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": _ERROR}
    for name, (contract, task) in sorted(contracts.items()):
        key = "".join(part.capitalize() for part in _safe(name).split("_")) or "Model"
        schemas[f"{key}Record"] = _record_schema(contract)
        schemas[f"{key}Prediction"] = _prediction_schema(task)
        record_ref = {"$ref": f"#/components/schemas/{key}Record"}
        prediction_ref = {"$ref": f"#/components/schemas/{key}Prediction"}
        example = sample_record(contract.signature)
        responses: dict[str, Any] = {
            "200": {
                "description": "The prediction (one record) or predictions (a batch).",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                prediction_ref,
                                {
                                    "type": "object",
                                    "required": ["predictions"],
                                    "properties": {
                                        "predictions": {"type": "array", "items": prediction_ref}
                                    },
                                },
                            ]
                        }
                    }
                },
            },
            **{
                code: {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for code, text in (
                    ("400", "Malformed JSON."),
                    ("404", "No such model served here."),
                    ("413", "Body or batch too large."),
                    ("415", "Not a JSON body."),
                    ("422", "A field breaks the model's contract (field and rule named)."),
                    (
                        "500",
                        "The model itself failed on records the contract accepted "
                        "(model_failed: version, exception class and request id named).",
                    ),
                    ("503", "Not ready yet (loading or warming up)."),
                )
            },
        }
        if api_key:
            responses["401"] = {
                "description": "Missing or wrong API key.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        paths[f"/v1/models/{name}/predict"] = {
            "post": {
                "operationId": f"predict_{_safe(name)}",
                "summary": f"Score records with {name}",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["inputs"],
                                "additionalProperties": False,
                                "properties": {
                                    "inputs": {
                                        "oneOf": [
                                            record_ref,
                                            {
                                                "type": "array",
                                                "items": record_ref,
                                                "minItems": 1,
                                                "maxItems": max_records,
                                            },
                                        ]
                                    }
                                },
                            },
                            "example": {"inputs": example},
                        }
                    },
                },
                "responses": responses,
                **({"security": [{"ApiKey": []}]} if api_key else {}),
            }
        }
    for path, summary in (
        ("/healthz", "Liveness: the process answers."),
        ("/readyz", "Readiness: every model is loaded and warmed up."),
    ):
        paths[path] = {
            "get": {
                "operationId": path.strip("/"),
                "summary": summary,
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {}}},
                    "503": {"description": "Not ready", "content": {"application/json": {}}},
                },
            }
        }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Shipyard model service", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if api_key:
        document["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        }
    return document


def _safe(name: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in name)
