"""Latest values (from memory), interval-matched aggregates, and the live stream."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from query_side.access import current_user, require_vps
from query_side.context import state
from query_side.errors import ApiError, bad_parameter, not_found
from query_side.responses import dumps, json_response
from query_side.schemas import parse_time
from query_side.timeseries import IntervalError, fetch_timeseries, plan_timeseries
from vpsmon.metrics import METRIC_COLUMNS

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", url_prefix="/api/vps/<vps_id:int>/metrics")

KEEPALIVE_SECONDS = 15.0


async def _latest(request: Request, vps_id: int) -> dict[str, Any] | None:
    app_state = state(request)
    if app_state.cache.connected:
        return app_state.cache.get(vps_id)
    # The listener is reconnecting: the cache may be behind, so ask the table.
    try:
        row = await app_state.pool.fetchrow(
            f"SELECT {', '.join(METRIC_COLUMNS)} FROM vps_latest WHERE vps_id = $1", vps_id
        )
    except Exception:
        raise ApiError(503, "unavailable", "the database is unavailable") from None
    return dict(row) if row is not None else None


@bp.get("/latest")
async def latest(request: Request, vps_id: int) -> HTTPResponse:
    user = await current_user(request)
    await require_vps(request, user, vps_id)
    values = await _latest(request, vps_id)
    if values is None:
        raise not_found(f"data for VPS {vps_id}")
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
    try:
        plan = plan_timeseries(args.get("interval", "auto"), start, end)
    except IntervalError as error:
        raise bad_parameter(str(error)) from None
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


@bp.get("/stream")
async def stream(request: Request, vps_id: int) -> None:
    """Server-Sent Events: the current value first, then each newer one as it commits."""
    user = await current_user(request)
    await require_vps(request, user, vps_id)
    cache = state(request).cache
    queue = cache.subscribe(vps_id)
    try:
        response = await request.respond(
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        await response.send(b"retry: 2000\n\n")
        current = cache.get(vps_id)
        if current is not None:
            await response.send(_event(current))
        while True:
            try:
                values = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.send(b": keep-alive\n\n")
                continue
            await response.send(_event(values))
    except ConnectionError:
        logger.debug("SSE viewer of VPS %d went away", vps_id)
    finally:
        cache.unsubscribe(vps_id, queue)
