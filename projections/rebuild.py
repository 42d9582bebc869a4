"""`vpsmon projections rebuild`: recompute every projection from the event logs.

- the VPS registry (`vps`, `agent_tokens`, `vps_agent_config`) is replayed
  from `vps_events` alone into empty shadow tables, then reconciled into the
  live ones without deleting a `vps` row that stays (emptying `vps` would
  cascade into the measurements; see projections/registry_rebuild.py);
- `vps_latest` is emptied and recomputed from `performance_metrics`;
- the rollups are recomputed for everything the raw log still holds. Buckets
  older than raw retention cannot be recomputed (their raw rows are gone by
  design) and are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from projections import postgres_rollups, timescale_rollups
from projections.latest_values import announce_latest
from projections.registry_rebuild import rebuild_vps_registry
from vpsmon.metrics import METRIC_COLUMNS
from vpsmon.rollup_levels import LEVELS
from vpsmon.storage.backend import Backend
from vpsmon.storage.types import Connection


@dataclass(frozen=True)
class RebuildReport:
    vps_events: int
    latest_rows: int
    rollups_from: datetime


async def rebuild_latest(conn: Connection) -> int:
    columns = ", ".join(METRIC_COLUMNS)
    async with conn.transaction():
        removed = await conn.fetch("DELETE FROM vps_latest RETURNING vps_id")
        rows = await conn.fetch(
            f"INSERT INTO vps_latest ({columns})"
            f" SELECT DISTINCT ON (vps_id) {columns} FROM performance_metrics"
            f" ORDER BY vps_id, time DESC RETURNING vps_id"
        )
        await announce_latest(conn, sorted({row["vps_id"] for row in [*removed, *rows]}))
    return len(rows)


async def rebuild_rollups(conn: Connection, backend: Backend) -> datetime:
    """Recompute every bucket that raw retention still covers; returns where that starts."""
    raw_keep: timedelta = await conn.fetchval(
        "SELECT keep FROM retention_policy WHERE relation = 'performance_metrics'"
    )
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    start = LEVELS[-1].ceil(now - raw_keep)
    if backend is Backend.TIMESCALEDB:
        await timescale_rollups.recompute(conn, start)
        return start
    # Plain PostgreSQL: declare the whole range invalid for every VPS; the
    # refresh recomputes it exactly as it would after late rows.
    await conn.execute(
        "INSERT INTO vpsmon_rollups.invalidations (vps_id, lowest, greatest)"
        " SELECT id, $1, $2 FROM vps",
        start,
        now,
    )
    await postgres_rollups.refresh(conn, wait=True)
    return start


async def rebuild_projections(conn: Connection, backend: Backend) -> RebuildReport:
    events = await rebuild_vps_registry(conn)
    latest = await rebuild_latest(conn)
    start = await rebuild_rollups(conn, backend)
    return RebuildReport(events, latest, start)
