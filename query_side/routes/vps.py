"""The caller's VPSes with their latest values and whether they are reporting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from projections.agent_overrides import EffectiveAgentConfig, effective_agent_config
from query_side.access import current_user
from query_side.accounts import visible_vps_ids
from query_side.context import state
from query_side.registry import list_registered_vps
from query_side.responses import json_response
from vpsmon.constants import ONLINE_MISSED_UPLOADS, ONLINE_WINDOW_MIN_S

bp = Blueprint("vps", url_prefix="/api/vps")


def online_window(config: EffectiveAgentConfig) -> timedelta:
    """A few missed uploads (or samples, whichever is slower), and never less than
    the minimum, mean the agent stopped reporting."""
    slowest = max(config.collect_interval_s, config.upload_interval_s)
    return max(
        timedelta(seconds=ONLINE_WINDOW_MIN_S),
        ONLINE_MISSED_UPLOADS * timedelta(seconds=slowest),
    )


@bp.get("")
async def list_vps(request: Request) -> HTTPResponse:
    user = await current_user(request)
    app_state = state(request)
    visible = await visible_vps_ids(app_state.pool, user)
    listed = await list_registered_vps(app_state.pool, visible)
    now = datetime.now(UTC)
    result: list[dict[str, Any]] = []
    for vps in sorted(listed, key=lambda v: (v.name, v.id)):
        config = effective_agent_config(
            app_state.settings,
            collect_interval_s=vps.collect_interval_s,
            upload_interval_s=vps.upload_interval_s,
        )
        latest = app_state.cache.get(vps.id)
        last_seen = latest["time"] if latest else None
        result.append(
            {
                "id": vps.id,
                "name": vps.name,
                "created_at": vps.created_at,
                "online": last_seen is not None and now - last_seen <= online_window(config),
                "last_seen": last_seen,
                "latest": latest,
            }
        )
    return json_response(result)
