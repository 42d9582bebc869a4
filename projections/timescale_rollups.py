"""Rollup maintenance on TimescaleDB, where the continuous aggregates do the work.

The policies set by `vpsmon migrate` run these on TimescaleDB's own
scheduler; calling them directly makes the same refresh happen now (tests,
operators after a bulk import). Each rollup view reads one continuous
aggregate per metric group (vpsmon_rollups.rollup_relations); every group's
aggregate of a level is refreshed before any of the next coarser level.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg

from vpsmon.rollup_levels import LEVELS
from vpsmon.storage.rollup_catalog import rollup_relations
from vpsmon.storage.types import Connection


async def refresh(conn: Connection, window: timedelta | None) -> dict[str, datetime]:
    """Refresh each aggregate, finest first, over the window its policy uses.

    ``window=None`` refreshes all history, e.g. after a bulk import that
    predates the policy window: below an aggregate's watermark, rows outside
    every refreshed window are never materialized.
    """
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    relations = await rollup_relations(conn)
    ends = {}
    for level in LEVELS:
        end = level.materialize_until(now)
        start = level.floor(now - window) if window is not None else None
        for aggregate in relations[level.view]:
            await _refresh_aggregate(conn, aggregate, start, end)
        ends[level.name] = end
    return ends


async def recompute(conn: Connection, start: datetime) -> None:
    """Recompute every bucket from ``start`` on, even those already materialized."""
    relations = await rollup_relations(conn)
    for level in LEVELS:
        for aggregate in relations[level.view]:
            await _refresh_aggregate(conn, aggregate, start, None, force=True)


async def _refresh_aggregate(
    conn: Connection,
    aggregate: str,
    start: datetime | None,
    end: datetime | None,
    *,
    force: bool = False,
) -> None:
    """Refresh [start, end) of one aggregate (``force``: buckets already materialized too)."""
    for attempt in range(50):
        try:
            await conn.execute(
                "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz,"
                " $3::timestamptz, force => $4)",
                aggregate,
                start,
                end,
                force,
            )
            return
        except asyncpg.LockNotAvailableError:
            # The policy job is refreshing the same aggregate; ours follows it.
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)


async def enforce_retention(conn: Connection) -> list[int]:
    """Run the retention policies' jobs now; returns their job ids."""
    job_ids: list[int] = [
        row["job_id"]
        for row in await conn.fetch(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_retention' ORDER BY job_id"
        )
    ]
    for job_id in job_ids:
        await conn.execute("CALL run_job($1)", job_id)
    return job_ids
