"""One live stream per VPS, across every command side.

A handshake claims the VPS in `agent_streams` (the newest claim wins) and
sends a hint on AGENT_STREAMS_CHANNEL; every command side then re-reads the claims
of the VPSes it holds streams for and ends the streams that lost theirs. So
an agent that restarted, or reconnected to another command side, replaces its
half-open old stream instead of running beside it.
"""

from __future__ import annotations

import uuid

from vpsmon.constants import AGENT_STREAMS_CHANNEL
from vpsmon.storage.notifications import encode_ids
from vpsmon.storage.types import Connection, Queryable


async def claim_stream(
    conn: Connection, vps_id: int, stream_id: uuid.UUID, hostname: str, agent_version: str
) -> None:
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO agent_streams (vps_id, stream_id, hostname, agent_version)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (vps_id) DO UPDATE SET stream_id = EXCLUDED.stream_id,"
            " hostname = EXCLUDED.hostname, agent_version = EXCLUDED.agent_version,"
            " connected_at = now()",
            vps_id,
            stream_id,
            hostname[:255],
            agent_version[:64],
        )
        for payload in encode_ids([vps_id]):
            await conn.execute("SELECT pg_notify($1, $2)", AGENT_STREAMS_CHANNEL, payload)


async def release_stream(conn: Queryable, vps_id: int, stream_id: uuid.UUID) -> None:
    """Forget a claim that is still this stream's (a newer one stays)."""
    await conn.execute(
        "DELETE FROM agent_streams WHERE vps_id = $1 AND stream_id = $2", vps_id, stream_id
    )


async def live_streams(conn: Queryable, vps_ids: list[int]) -> dict[int, uuid.UUID]:
    rows = await conn.fetch(
        "SELECT vps_id, stream_id FROM agent_streams WHERE vps_id = ANY($1::int[])", vps_ids
    )
    return {row["vps_id"]: row["stream_id"] for row in rows}
