"""The VPS registry: `vps`, `agent_tokens` and `vps_agent_config`, projected from `vps_events`.

A follower in the manner of eventsourcing's `Follower.pull_and_process`:
`catch_up` applies the events after its tracked position and records the new
position in the same transaction as the rows it wrote. Commands call it in
their own transaction right after they append, so that what a command did (a
revoked token, a new name) holds as soon as the command returns.

Each handler reads its event and nothing else (no user row, no token row), so
the same handlers fill empty shadow tables from the log alone
(projections/registry_rebuild.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from vpsmon.constants import (
    VPS_AGENT_CONFIG_CHANGED,
    VPS_DECOMMISSIONED,
    VPS_OWNER_CHANGED,
    VPS_REGISTERED,
    VPS_RENAMED,
    VPS_TOKEN_ROTATED,
)
from vpsmon.storage.event_log import (
    StoredVpsEvent,
    read_vps_events_after,
    record_position,
    tracked_position,
)
from vpsmon.storage.types import Connection

# What each kind of VPS event carries: everything its handler needs.
PAYLOAD_KEYS: dict[str, frozenset[str]] = {
    VPS_REGISTERED: frozenset({"name", "token_sha256", "owner_id"}),
    VPS_RENAMED: frozenset({"name"}),
    VPS_TOKEN_ROTATED: frozenset({"token_sha256"}),
    VPS_AGENT_CONFIG_CHANGED: frozenset(
        {"collect_interval_seconds", "upload_interval_seconds", "upload_batch_max_size"}
    ),
    VPS_OWNER_CHANGED: frozenset({"owner_id"}),
    VPS_DECOMMISSIONED: frozenset(),
}
REGISTRY_PROJECTION = "vps_registry"


def upcast(event: StoredVpsEvent) -> StoredVpsEvent:
    """The event in today's shape; ValueError for one that no handler can apply.

    Registered events from before owners existed (migration 0005) have no
    owner_id: they mean no owner, as that migration left their VPSes.
    """
    required = PAYLOAD_KEYS.get(event.event_type)
    if required is None:
        raise ValueError(f"event {event.event_id}: unknown VPS event type {event.event_type!r}")
    if event.event_type == VPS_REGISTERED and "owner_id" not in event.payload:
        event = replace(event, payload={**event.payload, "owner_id": None})
    missing = required - event.payload.keys()
    if missing:
        raise ValueError(
            f"event {event.event_id} ({event.event_type}) lacks {', '.join(sorted(missing))}"
        )
    return event


@dataclass(frozen=True)
class RegistryTables:
    """Where the registry is written: the live tables, or empty shadow copies of them."""

    vps: str
    agent_tokens: str
    agent_config: str


LIVE_REGISTRY = RegistryTables("vps", "agent_tokens", "vps_agent_config")

Handler = Callable[[Connection, RegistryTables, StoredVpsEvent], Awaitable[None]]


async def _registered(conn: Connection, tables: RegistryTables, event: StoredVpsEvent) -> None:
    await conn.execute(
        f"INSERT INTO {tables.vps} (id, name, created_at, updated_at, owner_id)"
        " VALUES ($1, $2, $3, $3, $4)",
        event.vps_id,
        event.payload["name"],
        event.occurred_at,
        event.payload["owner_id"],
    )
    await _activate_token(conn, tables, event)


def _sets_vps(column: str) -> Handler:
    """The handler of an event that sets one column of `vps`, from its payload key of
    the same name."""

    async def handle(conn: Connection, tables: RegistryTables, event: StoredVpsEvent) -> None:
        await conn.execute(
            f"UPDATE {tables.vps} SET {column} = $2, updated_at = $3 WHERE id = $1",
            event.vps_id,
            event.payload[column],
            event.occurred_at,
        )

    return handle


async def _activate_token(conn: Connection, tables: RegistryTables, event: StoredVpsEvent) -> None:
    """Make the event's token the VPS's only active one; a null token (a revocation)
    leaves none active."""
    await conn.execute(
        f"UPDATE {tables.agent_tokens} SET revoked_at = $2"
        " WHERE vps_id = $1 AND revoked_at IS NULL",
        event.vps_id,
        event.occurred_at,
    )
    hex_digest: str | None = event.payload["token_sha256"]
    if hex_digest is not None:
        await conn.execute(
            f"INSERT INTO {tables.agent_tokens} (token_sha256, vps_id, created_at)"
            " VALUES ($1, $2, $3)",
            bytes.fromhex(hex_digest),
            event.vps_id,
            event.occurred_at,
        )


async def _agent_config_changed(
    conn: Connection, tables: RegistryTables, event: StoredVpsEvent
) -> None:
    await conn.execute(
        f"INSERT INTO {tables.agent_config} (vps_id, collect_interval_seconds,"
        " upload_interval_seconds, upload_batch_max_size) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (vps_id) DO UPDATE SET collect_interval_seconds = $2,"
        " upload_interval_seconds = $3, upload_batch_max_size = $4",
        event.vps_id,
        event.payload["collect_interval_seconds"],
        event.payload["upload_interval_seconds"],
        event.payload["upload_batch_max_size"],
    )


async def _decommissioned(conn: Connection, tables: RegistryTables, event: StoredVpsEvent) -> None:
    # The live tables would cascade; shadow copies have no foreign keys.
    for table, column in ((tables.agent_tokens, "vps_id"), (tables.agent_config, "vps_id")):
        await conn.execute(f"DELETE FROM {table} WHERE {column} = $1", event.vps_id)
    await conn.execute(f"DELETE FROM {tables.vps} WHERE id = $1", event.vps_id)


_HANDLERS: dict[str, Handler] = {
    VPS_REGISTERED: _registered,
    VPS_RENAMED: _sets_vps("name"),
    VPS_TOKEN_ROTATED: _activate_token,
    VPS_AGENT_CONFIG_CHANGED: _agent_config_changed,
    VPS_OWNER_CHANGED: _sets_vps("owner_id"),
    VPS_DECOMMISSIONED: _decommissioned,
}


async def apply_vps_event(
    conn: Connection, event: StoredVpsEvent, tables: RegistryTables = LIVE_REGISTRY
) -> None:
    """Write one event into ``tables``, inside the caller's transaction."""
    event = upcast(event)
    await _HANDLERS[event.event_type](conn, tables, event)


async def catch_up(conn: Connection) -> int:
    """Apply every event after the tracked position to the live registry, and move
    the position in the same transaction; returns how many were applied."""
    async with conn.transaction():
        position = await tracked_position(conn, REGISTRY_PROJECTION)
        events = await read_vps_events_after(conn, position)
        for event in events:
            await apply_vps_event(conn, event)
        if events:
            await record_position(conn, REGISTRY_PROJECTION, events[-1].event_id)
    return len(events)
