"""Follows VPS events from any process (NOTIFY) and applies them to open streams."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from command_side.agent_config import agent_config_for
from command_side.service import AgentCommunicationService, end_replaced_streams
from command_side.vps_commands import vps_for_token
from proto.vpsmon.v1 import agent_pb2
from vpsmon.constants import (
    AGENT_STREAMS_CHANNEL,
    VPS_AGENT_CONFIG_CHANGED,
    VPS_DECOMMISSIONED,
    VPS_EVENTS_CHANNEL,
    VPS_TOKEN_ROTATED,
)
from vpsmon.errors import AgentTokenRejectedError
from vpsmon.settings import Settings
from vpsmon.storage.notifications import PendingIds

logger = logging.getLogger(__name__)


async def _revalidate(service: AgentCommunicationService, pool: asyncpg.Pool, vps_id: int) -> None:
    for stream in service.streams.for_vps(vps_id):
        if await vps_for_token(pool, stream.token) != vps_id:
            logger.info("closing the stream of VPS %d: its token was revoked", vps_id)
            stream.end(AgentTokenRejectedError("agent token revoked"))


async def _push_config(
    service: AgentCommunicationService, pool: asyncpg.Pool, vps_id: int, settings: Settings
) -> None:
    streams = service.streams.for_vps(vps_id)
    if streams:
        config = await agent_config_for(pool, vps_id, settings)
        service.apply_config(vps_id, config)
        for stream in streams:
            stream.push(agent_pb2.MessageToAgent(agent_config=config))


# What a command side does for each kind of VPS event; other kinds need nothing.
_ACTIONS = {
    VPS_TOKEN_ROTATED: "revoke",
    VPS_DECOMMISSIONED: "revoke",
    VPS_AGENT_CONFIG_CHANGED: "config",
}


async def _apply_events(
    service: AgentCommunicationService,
    pool: asyncpg.Pool,
    settings: Settings,
    event_ids: set[int] | None,
) -> None:
    """Act on the events named by notifications, as the event log records them
    (None: too many to name, so re-check every stream and push every config)."""
    if event_ids is None:
        connected = {stream.vps_id for stream in service.streams}
        actions = {(vps_id, kind) for vps_id in connected for kind in ("revoke", "config")}
    else:
        events = await pool.fetch(
            "SELECT vps_id, event_type FROM vps_events WHERE event_id = ANY($1::bigint[])",
            list(event_ids),
        )
        actions = {
            (e["vps_id"], _ACTIONS[e["event_type"]]) for e in events if e["event_type"] in _ACTIONS
        }
    for vps_id, action in sorted(actions):
        if action == "revoke":
            await _revalidate(service, pool, vps_id)
        else:
            await _push_config(service, pool, vps_id, settings)


async def follow_vps_events(
    dsn: str,
    pool: asyncpg.Pool,
    service: AgentCommunicationService,
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """LISTEN on a dedicated connection; after a reconnect, re-check every stream."""
    hints = PendingIds(VPS_EVENTS_CHANNEL)
    claims = PendingIds(AGENT_STREAMS_CHANNEL, ready=hints.ready)
    delay = 0.5
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn)
        except Exception as error:
            logger.warning("VPS event listener cannot connect (%r); retrying", error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        delay = 0.5
        try:
            hints.take()
            claims.take()
            await conn.add_listener(VPS_EVENTS_CHANNEL, hints.on_notification)
            await conn.add_listener(AGENT_STREAMS_CHANNEL, claims.on_notification)
            # Events and claims may have been missed while disconnected.
            connected = sorted({stream.vps_id for stream in service.streams})
            for vps_id in connected:
                await _revalidate(service, pool, vps_id)
            await end_replaced_streams(service, pool, connected)
            while not stop.is_set() and not conn.is_closed():
                await asyncio.wait(
                    [
                        asyncio.ensure_future(hints.wait(1.0)),
                        asyncio.ensure_future(claims.wait(1.0)),
                    ],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                claimed = claims.take()
                if claimed is None or claimed:
                    ours = {stream.vps_id for stream in service.streams}
                    await end_replaced_streams(
                        service, pool, sorted(ours if claimed is None else ours & claimed)
                    )
                event_ids = hints.take()
                if event_ids is None or event_ids:
                    await _apply_events(service, pool, settings, event_ids)
        except Exception as error:
            logger.warning("VPS event listener failed (%r); reconnecting", error)
        finally:
            await conn.close()
