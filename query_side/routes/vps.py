"""The caller's VPSes with their latest values and whether they are reporting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from query_side.access import current_user
from query_side.accounts import visible_vps_ids
from query_side.context import state
from query_side.responses import json_response

bp = Blueprint("vps", url_prefix="/api/vps")


def online_window(collect_seconds: int, upload_seconds: int) -> timedelta:
    """Three missed uploads, and never less than 15 s, mean the agent stopped reporting."""
    return max(timedelta(seconds=15), 3 * timedelta(seconds=max(collect_seconds, upload_seconds)))


@bp.get("")
async def list_vps(request: Request) -> HTTPResponse:
    user = await current_user(request)
    app_state = state(request)
    ids = await visible_vps_ids(app_state.pool, user)
    rows = await app_state.pool.fetch(
        "SELECT id, name, created_at FROM vps WHERE id = ANY($1::int[]) ORDER BY name, id", ids
    )
    window = online_window(
        app_state.settings.agent_collect_interval, app_state.settings.agent_upload_interval
    )
    now = datetime.now(UTC)
    result: list[dict[str, Any]] = []
    for row in rows:
        latest = app_state.cache.get(row["id"])
        last_seen = latest["time"] if latest else None
        result.append(
            {
                "id": row["id"],
                "name": row["name"],
                "created_at": row["created_at"],
                "online": last_seen is not None and now - last_seen <= window,
                "last_seen": last_seen,
                "latest": latest,
            }
        )
    return json_response(result)
