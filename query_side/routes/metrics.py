"""Latest values (from memory), interval-matched aggregates, and the live stream."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from query_side.access import Caller, current_caller, current_user, require_vps
from query_side.accounts import can_see_vps
from query_side.context import state
from query_side.responses import dumps, json_response
from query_side.schemas import parse_time
from query_side.timeseries import fetch_timeseries, plan_timeseries
from vpsmon.constants import SSE_CREDENTIAL_GRACE_S, SSE_CREDENTIAL_RECHECK_S, SSE_KEEPALIVE_S
from vpsmon.errors import NotFoundError, StorageUnavailableError
from vpsmon.metrics import METRIC_COLUMNS
from vpsmon.self_metrics import SELF_METRICS
from vpsmon.storage.errors import translated_errors

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", url_prefix="/api/vps/<vps_id:int>/metrics")

# An open stream re-checks its credential (and the VPS) often, so that logout,
# a password change, removing the user or revoking the token ends it.


async def _latest(request: Request, vps_id: int) -> dict[str, Any] | None:
    app_state = state(request)
    if app_state.cache.connected:
        return app_state.cache.get(vps_id)
    # The listener is reconnecting: the cache may be behind, so ask the table.
    try:
        with translated_errors():
            row = await app_state.pool.fetchrow(
                f"SELECT {', '.join(METRIC_COLUMNS)} FROM vps_latest WHERE vps_id = $1", vps_id
            )
    except StorageUnavailableError:
        raise StorageUnavailableError("the database is unavailable") from None
    return dict(row) if row is not None else None


@bp.get("/latest")
async def latest(request: Request, vps_id: int) -> HTTPResponse:
    user = await current_user(request)
    await require_vps(request, user, vps_id)
    values = await _latest(request, vps_id)
    if values is None:
        raise NotFoundError(f"data for VPS {vps_id} not found")
    return json_response(values)


@bp.get("/timeseries")
async def timeseries(request: Request, vps_id: int) -> HTTPResponse:
    user = await current_user(request)
    await require_vps(request, user, vps_id)
    args = request.args
    end = parse_time("end_time", args.get("end_time")) if "end_time" in args else None
    start = parse_time("start_time", args.get("start_time")) if "start_time" in args else None
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=1)
    plan = plan_timeseries(args.get("interval", "auto"), start, end)
    points = await fetch_timeseries(state(request).pool, vps_id, plan)
    return json_response(
        {
            "vps_id": vps_id,
            "interval": plan.interval,
            "source": plan.source,
            "start_time": plan.start,
            "end_time": plan.end,
            "points": points,
        }
    )


def _event(values: dict[str, Any]) -> bytes:
    moment: datetime = values["time"]
    return b"id: %d\ndata: %s\n\n" % (int(moment.timestamp() * 1000), dumps(values))


async def _still_allowed(request: Request, caller: Caller, vps_id: int) -> bool | None:
    """True or False from the database; None when it cannot answer now."""
    try:
        async with state(request).pool.acquire(timeout=SSE_CREDENTIAL_RECHECK_S) as conn:
            return await caller.still_valid(conn) and await can_see_vps(conn, caller.user, vps_id)
    except Exception as error:
        logger.debug("cannot re-check the SSE viewer of VPS %d: %r", vps_id, error)
        return None


@bp.get("/stream")
async def stream(request: Request, vps_id: int) -> None:
    """Server-Sent Events: the current value first, then each newer one as it commits.

    Ends within seconds once the caller's credential or access is gone.
    """
    caller = await current_caller(request)
    await require_vps(request, caller.user, vps_id)
    cache = state(request).cache
    queue = cache.subscribe(vps_id)
    SELF_METRICS.sse_clients.inc()
    loop = asyncio.get_running_loop()
    try:
        response = await request.respond(
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        await response.send(b"retry: 2000\n\n")
        current = cache.get(vps_id)
        if current is not None:
            await response.send(_event(current))
        now = loop.time()
        next_check, next_keepalive, confirmed = (
            now + SSE_CREDENTIAL_RECHECK_S,
            now + SSE_KEEPALIVE_S,
            now,
        )
        while True:
            timeout = max(0.0, min(next_check, next_keepalive) - loop.time())
            try:
                values: dict[str, Any] | None = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                values = None
            now = loop.time()
            if now >= next_check:
                allowed = await _still_allowed(request, caller, vps_id)
                now = loop.time()
                if allowed:
                    confirmed = now
                elif allowed is False or now - confirmed >= SSE_CREDENTIAL_GRACE_S:
                    await response.send(b": access ended\n\n")
                    await response.eof()
                    return
                next_check = now + SSE_CREDENTIAL_RECHECK_S
            if values is not None:
                await response.send(_event(values))
                next_keepalive = now + SSE_KEEPALIVE_S
            elif now >= next_keepalive:
                await response.send(b": keep-alive\n\n")
                next_keepalive = now + SSE_KEEPALIVE_S
    except ConnectionError:
        logger.debug("SSE viewer of VPS %d went away", vps_id)
    finally:
        cache.unsubscribe(vps_id, queue)
        SELF_METRICS.sse_clients.dec()
