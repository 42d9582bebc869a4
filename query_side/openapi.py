"""The OpenAPI 3.1 document of the HTTP contract, built from the pydantic models."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Any

from pydantic import BaseModel

from query_side.schemas import (
    ErrorBody,
    Health,
    LatestMetrics,
    LoginRequest,
    LoginResponse,
    PublicHealth,
    TimeseriesResponse,
    VpsSummary,
)
from vpsmon.constants import SESSION_COOKIE

_REF = "#/components/schemas/{model}"
_MODELS: list[type[BaseModel]] = [
    ErrorBody,
    Health,
    LatestMetrics,
    LoginRequest,
    LoginResponse,
    PublicHealth,
    TimeseriesResponse,
    VpsSummary,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "invalid parameter",
        401: "not logged in, or invalid API token",
        404: "unknown VPS, another user's VPS, or no data yet",
        415: "the body is not application/json",
        422: "invalid request body",
        429: "too many failed logins",
        503: "database or cache unavailable",
    }
    return {str(s): _json(_ref(ErrorBody), texts[s]) for s in statuses}


_VPS_ID = {"name": "vps_id", "in": "path", "required": True, "schema": {"type": "integer"}}

# One Server-Sent Event, in the event model of OpenAPI 3.2 (which tools also apply to the
# `schema` of a `text/event-stream` in 3.1 documents): the fields of the event, its data
# being a LatestMetrics as JSON. Blocks without data (retry, keep-alive) are not events.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/LatestMetrics"},
        },
        "id": {"type": "string", "description": "the snapshot's time in Unix milliseconds"},
        "event": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
_SECURITY: list[dict[str, list[str]]] = [{"session": []}, {"bearer": []}]
# Health answers anyone; signed-in callers get more.
_OPTIONAL_SECURITY: list[dict[str, list[str]]] = [{}, *_SECURITY]
# A signed-in caller's answer also matches PublicHealth, hence anyOf (not oneOf).
_HEALTH = {"anyOf": [_ref(Health), _ref(PublicHealth)]}


def _time_param(name: str, default: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"RFC 3339 or Unix seconds; default {default}",
        "schema": {"type": "string"},
    }


@cache
def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "vpsmon", "version": metadata.version("vpsmon")},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": {
            "/api/health": {
                "get": {
                    "summary": "Service health; backend and versions only when signed in",
                    "security": _OPTIONAL_SECURITY,
                    "responses": {
                        "200": _json(_HEALTH, "healthy"),
                        "503": _json(_HEALTH, "database or cache unavailable"),
                    },
                }
            },
            "/api/auth/login": {
                "post": {
                    "summary": "Log in; sets the HttpOnly session cookie",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(LoginRequest)}},
                    },
                    "responses": {
                        "200": _json(_ref(LoginResponse), "logged in"),
                        **_errors(401, 415, 422, 429),
                    },
                }
            },
            "/api/auth/logout": {
                "post": {
                    "summary": "End the session",
                    "security": _SECURITY,
                    "responses": {"204": {"description": "logged out"}, **_errors(401)},
                }
            },
            "/api/vps": {
                "get": {
                    "summary": "The caller's VPSes with online state and latest values",
                    "security": _SECURITY,
                    "responses": {
                        "200": _json({"type": "array", "items": _ref(VpsSummary)}, "VPS list"),
                        **_errors(401),
                    },
                }
            },
            "/api/vps/{vps_id}/metrics/latest": {
                "get": {
                    "summary": "The newest snapshot",
                    "security": _SECURITY,
                    "parameters": [_VPS_ID],
                    "responses": {
                        "200": _json(_ref(LatestMetrics), "newest snapshot"),
                        **_errors(401, 404, 503),
                    },
                }
            },
            "/api/vps/{vps_id}/metrics/timeseries": {
                "get": {
                    "summary": "Aggregates per bucket from the matching rollup",
                    "security": _SECURITY,
                    "parameters": [
                        _VPS_ID,
                        _time_param("start_time", "end_time - 1 hour"),
                        _time_param("end_time", "now"),
                        {
                            "name": "interval",
                            "in": "query",
                            "required": False,
                            "description": "1m, 5m, 1h, auto, or a whole multiple of a "
                            "rollup width such as 15m, 6h, 1d",
                            "schema": {"type": "string", "default": "auto"},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref(TimeseriesResponse), "points, ascending"),
                        **_errors(400, 401, 404),
                    },
                }
            },
            "/api/vps/{vps_id}/metrics/stream": {
                "get": {
                    "summary": "Server-Sent Events: the latest snapshot as it is committed",
                    "security": _SECURITY,
                    "parameters": [_VPS_ID],
                    "responses": {
                        "200": {
                            "description": "event stream; each event's data is a LatestMetrics",
                            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
                        },
                        **_errors(401, 404),
                    },
                }
            },
        },
    }
