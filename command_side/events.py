"""Follows VPS events from any process (NOTIFY) and applies them to open streams."""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
import grpc

from command_side.agent_config import agent_config_for
from command_side.service import AgentCommunicationService
from command_side.vps_commands import VPS_EVENTS_CHANNEL, vps_for_token
from proto.vpsmon.v1 import agent_pb2
from vpsmon.settings import Settings

logger = logging.getLogger(__name__)


async def _revalidate(service: AgentCommunicationService, pool: asyncpg.Pool, vps_id: int) -> None:
    for stream in service.streams.for_vps(vps_id):
        if await vps_for_token(pool, stream.token) != vps_id:
            logger.info("closing the stream of VPS %d: its token was revoked", vps_id)
            stream.fail(grpc.StatusCode.UNAUTHENTICATED, "agent token revoked")


async def _push_config(
    service: AgentCommunicationService, pool: asyncpg.Pool, vps_id: int, settings: Settings
) -> None:
    streams = service.streams.for_vps(vps_id)
    if streams:
        config = await agent_config_for(pool, vps_id, settings)
        for stream in streams:
            stream.push(agent_pb2.MessageToAgent(agent_config=config))


async def follow_vps_events(
    dsn: str,
    pool: asyncpg.Pool,
    service: AgentCommunicationService,
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """LISTEN on a dedicated connection; after a reconnect, re-check every stream."""
    queue: asyncio.Queue[str] = asyncio.Queue()
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
            await conn.add_listener(VPS_EVENTS_CHANNEL, lambda *args: queue.put_nowait(args[3]))
            # Events may have been missed while disconnected.
            for vps_id in {stream.vps_id for stream in service.streams}:
                await _revalidate(service, pool, vps_id)
            while not stop.is_set() and not conn.is_closed():
                try:
                    payload = await asyncio.wait_for(queue.get(), 1.0)
                except TimeoutError:
                    continue
                event = json.loads(payload)
                vps_id, kind = int(event["vps_id"]), event["event_type"]
                if kind in ("token_rotated", "decommissioned"):
                    await _revalidate(service, pool, vps_id)
                elif kind == "agent_config_changed":
                    await _push_config(service, pool, vps_id, settings)
        except Exception as error:
            logger.warning("VPS event listener failed (%r); reconnecting", error)
        finally:
            await conn.close()
