"""Rebuild the VPS registry from `vps_events` alone, without losing measurements.

The whole log is replayed into empty shadow tables (temporary copies of vps,
agent_tokens and vps_agent_config with their checks and unique indexes, but no
foreign keys) by the handlers that keep the live tables. The live tables are
then made equal to the shadow:

- `vps` is reconciled in place: rows the log no longer has are deleted, rows
  that differ are updated, missing rows are inserted. It is never emptied nor
  swapped for the shadow: performance_metrics, vps_latest, the rollups,
  ingested_batches, agent_streams and vps_agent_config reference it ON DELETE
  CASCADE, so emptying it would delete every measurement, and a swap would
  have to re-create all those foreign keys (over hypertables on TimescaleDB).
  A row whose VPS the log decommissioned goes with its data, as the
  decommission itself did.
- `agent_tokens` and `vps_agent_config` are referenced by nothing: rows that
  differ from the shadow are deleted and the shadow's missing rows inserted, so
  every state in between is a subset of the shadow and keeps its unique
  indexes (one active token per VPS).

Appends are held off for the whole transaction, and the registry's tracked
position becomes the last event replayed.
"""

from __future__ import annotations

from dataclasses import fields

from projections.vps_registry import (
    LIVE_REGISTRY,
    REGISTRY_PROJECTION,
    RegistryTables,
    apply_vps_event,
)
from vpsmon.storage.event_log import (
    hold_vps_event_log,
    read_vps_events_after,
    record_position,
    tracked_position,
)
from vpsmon.storage.types import Connection

SHADOW_REGISTRY = RegistryTables(
    "pg_temp.shadow_vps", "pg_temp.shadow_agent_tokens", "pg_temp.shadow_vps_agent_config"
)
# The key of each registry table, by its field in RegistryTables.
_KEYS = {"vps": "id", "agent_tokens": "token_sha256", "agent_config": "vps_id"}


def _table_pairs() -> list[tuple[str, str, str]]:
    """(live table, shadow table, key column), parents first."""
    return [
        (getattr(LIVE_REGISTRY, f.name), getattr(SHADOW_REGISTRY, f.name), _KEYS[f.name])
        for f in fields(RegistryTables)
    ]


async def build_shadow_registry(conn: Connection) -> tuple[int, int]:
    """Replay the whole log into empty SHADOW_REGISTRY tables, which last until the
    caller's transaction ends; returns (events replayed, last event id)."""
    if not conn.is_in_transaction():
        raise RuntimeError("the shadow registry lives in a transaction: open one first")
    for live, shadow, _ in _table_pairs():
        await conn.execute(f"DROP TABLE IF EXISTS {shadow}")
        await conn.execute(
            f"CREATE TEMPORARY TABLE {shadow.removeprefix('pg_temp.')}"
            f" (LIKE {live} INCLUDING ALL) ON COMMIT DROP"
        )
    events = await read_vps_events_after(conn, 0)
    for event in events:
        await apply_vps_event(conn, event, SHADOW_REGISTRY)
    return len(events), events[-1].event_id if events else 0


async def _columns(conn: Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1)"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        table,
    )
    return [row["attname"] for row in rows]


async def _reconcile_in_place(conn: Connection, live: str, shadow: str, key: str) -> None:
    """Make ``live`` equal to ``shadow`` by key, never deleting a row that stays."""
    columns = await _columns(conn, live)
    listed = ", ".join(columns)
    others = [c for c in columns if c != key]
    assignments = ", ".join(f"{c} = s.{c}" for c in others)
    current = ", ".join(f"l.{c}" for c in others)
    wanted = ", ".join(f"s.{c}" for c in others)
    await conn.execute(f"DELETE FROM {live} WHERE {key} NOT IN (SELECT {key} FROM {shadow})")
    await conn.execute(
        f"UPDATE {live} l SET {assignments} FROM {shadow} s"
        f" WHERE l.{key} = s.{key} AND ({current}) IS DISTINCT FROM ({wanted})"
    )
    await conn.execute(
        f"INSERT INTO {live} ({listed}) SELECT {listed} FROM {shadow}"
        f" WHERE {key} NOT IN (SELECT {key} FROM {live})"
    )


async def _reconcile_rows(conn: Connection, live: str, shadow: str, key: str) -> None:
    """Make ``live`` equal to ``shadow``: delete the rows that differ, insert the missing."""
    listed = ", ".join(await _columns(conn, live))
    await conn.execute(
        f"DELETE FROM {live} WHERE {key} IN (SELECT {key} FROM"
        f" (SELECT {listed} FROM {live} EXCEPT SELECT {listed} FROM {shadow}) differing)"
    )
    await conn.execute(
        f"INSERT INTO {live} ({listed})"
        f" SELECT {listed} FROM {shadow} EXCEPT SELECT {listed} FROM {live}"
    )


async def rebuild_vps_registry(conn: Connection) -> int:
    """Rebuild the live registry from the log (see the module docstring); returns the
    number of events replayed."""
    async with conn.transaction():
        await hold_vps_event_log(conn)
        await tracked_position(conn, REGISTRY_PROJECTION)
        replayed, last_event_id = await build_shadow_registry(conn)
        for live, shadow, key in _table_pairs():
            if live == LIVE_REGISTRY.vps:
                await _reconcile_in_place(conn, live, shadow, key)
            else:
                await _reconcile_rows(conn, live, shadow, key)
        await record_position(conn, REGISTRY_PROJECTION, last_event_id)
    return replayed
