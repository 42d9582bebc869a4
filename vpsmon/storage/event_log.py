"""The VPS event log: one versioned stream per VPS, and where projections stand in it.

Appends use optimistic concurrency, as eventsourcing's recorders do: the
caller names the version it appends at, and `UNIQUE (vps_id, version)` makes
the second of two writers that read the same version fail. That failure comes
back as `ConcurrencyError` (vpsmon/storage/errors.py translates it).

Appenders also take the log in EXCLUSIVE mode until they commit (readers go
on), so event ids become visible in increasing order: a follower that has seen
id N has seen every id below N, and can go on from its tracked position + 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from vpsmon.errors import ConcurrencyError, MigrationError
from vpsmon.storage.errors import translated_errors
from vpsmon.storage.types import Connection, Queryable

_COLUMNS = "event_id, vps_id, version, event_type, payload, occurred_at"


@dataclass(frozen=True)
class StoredVpsEvent:
    """One row of `vps_events`, its payload decoded."""

    event_id: int
    vps_id: int
    version: int
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime


def _event(row: asyncpg.Record) -> StoredVpsEvent:
    return StoredVpsEvent(
        row["event_id"],
        row["vps_id"],
        row["version"],
        row["event_type"],
        json.loads(row["payload"]),
        row["occurred_at"],
    )


async def append_vps_event(
    conn: Connection, vps_id: int, version: int, event_type: str, payload: dict[str, Any]
) -> StoredVpsEvent:
    """Append at ``version`` inside the caller's transaction.

    ConcurrencyError when another writer appended that version first: the
    caller's transaction is then aborted and must be rolled back.
    """
    try:
        with translated_errors():
            await conn.execute("LOCK TABLE vps_events IN EXCLUSIVE MODE")
            row = await conn.fetchrow(
                "INSERT INTO vps_events (vps_id, version, event_type, payload)"
                f" VALUES ($1, $2, $3, $4::jsonb) RETURNING {_COLUMNS}",
                vps_id,
                version,
                event_type,
                json.dumps(payload),
            )
    except ConcurrencyError as error:
        message = f"VPS {vps_id} already has an event at version {version}"
        raise ConcurrencyError(message) from error.__cause__
    assert row is not None
    return _event(row)


async def read_vps_stream(conn: Queryable, vps_id: int) -> list[StoredVpsEvent]:
    """Every event of one VPS, by version."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM vps_events WHERE vps_id = $1 ORDER BY version", vps_id
    )
    return [_event(row) for row in rows]


async def read_vps_events_after(conn: Queryable, event_id: int) -> list[StoredVpsEvent]:
    """Every event after ``event_id``, in log order."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM vps_events WHERE event_id > $1 ORDER BY event_id", event_id
    )
    return [_event(row) for row in rows]


async def hold_vps_event_log(conn: Connection) -> None:
    """Keep appenders out until the caller's transaction ends (readers go on)."""
    await conn.execute("LOCK TABLE vps_events IN SHARE MODE")


async def tracked_position(conn: Connection, projection: str) -> int:
    """The last event ``projection`` applied, locked until the caller's transaction
    ends so that two followers never apply the same events."""
    position: int | None = await conn.fetchval(
        "SELECT last_event_id FROM projection_tracking WHERE projection = $1 FOR UPDATE",
        projection,
    )
    if position is None:
        raise MigrationError(f"projection {projection!r} is not tracked: run `vpsmon migrate`")
    return position


async def record_position(conn: Connection, projection: str, event_id: int) -> None:
    """Record that ``projection`` applied every event up to ``event_id``."""
    await conn.execute(
        "UPDATE projection_tracking SET last_event_id = $2 WHERE projection = $1",
        projection,
        event_id,
    )
