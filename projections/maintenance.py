"""Periodic projection upkeep that runs inside the command-side and query-side processes.

On plain PostgreSQL the rollups are ours to refresh (both servers may: the
rollup tables are granted to vpsmon_ingest and vpsmon_query); on TimescaleDB
its policies do that. Retention deletes measurements and the ingest
idempotency keys they guard, so only the command side (vpsmon_ingest) runs
it. Advisory locks make every instance safe to run this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from projections import postgres_rollups
from vpsmon.settings import Settings
from vpsmon.storage.backend import Backend
from vpsmon.storage.types import Connection, rows_affected

logger = logging.getLogger(__name__)

RETENTION_EVERY_SECONDS = 3600.0


async def prune_ingested_batches(conn: Connection) -> int:
    """Batch ids older than raw retention can no longer be re-sent validly."""
    status: str = await conn.execute(
        "DELETE FROM ingested_batches WHERE committed_at < now() - (SELECT keep"
        " FROM retention_policy WHERE relation = 'performance_metrics')"
    )
    return rows_affected(status)


async def run_projection_maintenance(
    pool: asyncpg.Pool,
    backend: Backend,
    settings: Settings,
    stop: asyncio.Event,
    *,
    retention: bool,
) -> None:
    interval = settings.rollup_refresh_interval.total_seconds()
    last_retention = 0.0
    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                if backend is Backend.POSTGRESQL:
                    await postgres_rollups.refresh(conn)
                if retention and time.monotonic() - last_retention >= RETENTION_EVERY_SECONDS:
                    if backend is Backend.POSTGRESQL:
                        await postgres_rollups.enforce_retention(conn)
                    await prune_ingested_batches(conn)
                    last_retention = time.monotonic()
        except Exception:
            logger.exception("projection maintenance failed; retrying in %.0f s", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
