"""The `vps` and `agent_tokens` projections of the VPS event log.

Every handler is an upsert or a delete keyed by the event's VPS, so replaying
the whole log over the current tables yields the same tables: a rebuild never
has to empty `vps`, which would take every measurement with it (ON DELETE
CASCADE).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vpsmon.constants import (
    VPS_AGENT_CONFIG_CHANGED,
    VPS_DECOMMISSIONED,
    VPS_REGISTERED,
    VPS_RENAMED,
    VPS_TOKEN_ROTATED,
)
from vpsmon.storage.types import Connection


@dataclass(frozen=True)
class VpsEvent:
    vps_id: int
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime


async def apply_vps_event(conn: Connection, event: VpsEvent) -> None:
    """Update the projections for one event, inside the caller's transaction."""
    if event.event_type == VPS_REGISTERED:
        # An owner deleted since (or an event from before owners existed): no owner,
        # as ON DELETE SET NULL left it, so that a replay yields the same table.
        await conn.execute(
            "INSERT INTO vps (id, name, created_at, updated_at, owner_id)"
            " VALUES ($1, $2, $3, $3, (SELECT id FROM users WHERE id = $4))"
            " ON CONFLICT (id) DO UPDATE SET name = $2, created_at = $3, updated_at = $3,"
            " owner_id = EXCLUDED.owner_id",
            event.vps_id,
            event.payload["name"],
            event.occurred_at,
            event.payload.get("owner_id"),
        )
        await _activate_token(conn, event)
    elif event.event_type == VPS_RENAMED:
        await conn.execute(
            "UPDATE vps SET name = $2, updated_at = $3 WHERE id = $1",
            event.vps_id,
            event.payload["name"],
            event.occurred_at,
        )
    elif event.event_type == VPS_TOKEN_ROTATED:
        await _activate_token(conn, event)
    elif event.event_type == VPS_AGENT_CONFIG_CHANGED:
        await conn.execute(
            "INSERT INTO vps_agent_config (vps_id, collect_interval_seconds,"
            " upload_interval_seconds, upload_batch_max_size) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (vps_id) DO UPDATE SET collect_interval_seconds = $2,"
            " upload_interval_seconds = $3, upload_batch_max_size = $4",
            event.vps_id,
            event.payload.get("collect_interval_seconds"),
            event.payload.get("upload_interval_seconds"),
            event.payload.get("upload_batch_max_size"),
        )
    elif event.event_type == VPS_DECOMMISSIONED:
        await conn.execute("DELETE FROM vps WHERE id = $1", event.vps_id)
    else:
        raise ValueError(f"unknown VPS event type {event.event_type!r}")


async def _activate_token(conn: Connection, event: VpsEvent) -> None:
    """Make the event's token the VPS's only active one (also when replayed).

    A rotation to no token (``token_sha256`` null) is a revocation: no token is
    active afterwards.
    """
    hex_digest = event.payload.get("token_sha256")
    digest = None if hex_digest is None else bytes.fromhex(hex_digest)
    await conn.execute(
        "UPDATE agent_tokens SET revoked_at = $2"
        " WHERE vps_id = $1 AND revoked_at IS NULL AND token_sha256 IS DISTINCT FROM $3",
        event.vps_id,
        event.occurred_at,
        digest,
    )
    if digest is None:
        return
    await conn.execute(
        "INSERT INTO agent_tokens (token_sha256, vps_id, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (token_sha256) DO UPDATE SET revoked_at = NULL, created_at = $3",
        digest,
        event.vps_id,
        event.occurred_at,
    )


async def rebuild_vps_registry(conn: Connection) -> int:
    """Replay every VPS event in order; returns the number replayed."""
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT vps_id, event_type, payload, occurred_at FROM vps_events ORDER BY event_id"
        )
        for row in rows:
            await apply_vps_event(
                conn,
                VpsEvent(
                    row["vps_id"], row["event_type"], json.loads(row["payload"]), row["occurred_at"]
                ),
            )
        await conn.execute(
            "DELETE FROM vps WHERE id NOT IN (SELECT vps_id FROM vps_events"
            " WHERE event_type = $1 EXCEPT SELECT vps_id FROM vps_events"
            " WHERE event_type = $2)",
            VPS_REGISTERED,
            VPS_DECOMMISSIONED,
        )
        return len(rows)
