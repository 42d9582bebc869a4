"""Health and the OpenAPI document: no credentials needed.

An anonymous health check learns only ok or not ok: versions and the storage
backend help an attacker pick an exploit, so only signed-in callers see them.
"""

from __future__ import annotations

from importlib import metadata

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from query_side.access import optional_user
from query_side.context import state
from query_side.openapi import openapi_document
from query_side.responses import json_response

bp = Blueprint("system", url_prefix="/api")


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    app_state = state(request)
    versions: dict[str, str | None] = {"vpsmon": metadata.version("vpsmon")}
    status = "ok"
    try:
        async with app_state.pool.acquire() as conn:
            versions["postgresql"] = await conn.fetchval("SHOW server_version")
            versions["timescaledb"] = await conn.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            )
    except Exception:
        status = "degraded"
        versions["postgresql"] = None
        versions["timescaledb"] = None
    cache = "live" if app_state.cache.connected else "reconnecting"
    if cache != "live":
        status = "degraded"
    code = 200 if status == "ok" else 503
    if await optional_user(request) is None:
        return json_response({"status": status}, status=code)
    body = {
        "status": status,
        "backend": app_state.backend.value,
        "versions": versions,
        "latest_cache": cache,
    }
    return json_response(body, status=code)


@bp.get("/openapi.json")
async def openapi(request: Request) -> HTTPResponse:
    return json_response(openapi_document())
