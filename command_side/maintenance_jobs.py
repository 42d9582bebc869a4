"""The command side's background jobs, and `vpsmon maintain`, which runs them alone.

On plain PostgreSQL the rollups are vpsmon's projections to refresh, and raw
rows and buckets past retention are ours to delete. On TimescaleDB its own
scheduler runs refresh, retention and compression as policies (set by
`vpsmon migrate`), once per cluster already, so only vpsmon's own tables are
left to prune.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg

from command_side.maintenance import MaintenanceJob, MaintenanceRunner
from command_side.signals import run_until_signalled
from projections import postgres_rollups
from vpsmon.settings import Settings
from vpsmon.storage.backend import Backend
from vpsmon.storage.database import open_database
from vpsmon.storage.schema import upgrade_database
from vpsmon.storage.types import Connection, rows_affected

logger = logging.getLogger(__name__)

RETENTION_INTERVAL = timedelta(hours=1)
# Long enough to see how the runner behaved over the last days.
MAINTENANCE_RUNS_KEPT = timedelta(days=7)


async def prune_ingested_batches(conn: Connection) -> int:
    """Batch ids older than raw retention can no longer be re-sent validly."""
    status: str = await conn.execute(
        "DELETE FROM ingested_batches WHERE committed_at < now() - (SELECT keep"
        " FROM retention_policy WHERE relation = 'performance_metrics')"
    )
    return rows_affected(status)


async def prune_maintenance_runs(conn: Connection) -> int:
    status: str = await conn.execute(
        "DELETE FROM maintenance_runs WHERE finished_at < now() - $1::interval",
        MAINTENANCE_RUNS_KEPT,
    )
    return rows_affected(status)


def maintenance_jobs(backend: Backend, settings: Settings) -> list[MaintenanceJob]:
    """Everything the elected runner does for a database on ``backend``."""

    async def refresh_rollups(conn: asyncpg.Connection) -> None:
        await postgres_rollups.refresh(conn)

    async def enforce_retention(conn: asyncpg.Connection) -> None:
        if backend is Backend.POSTGRESQL:
            await postgres_rollups.enforce_retention(conn)
        await prune_ingested_batches(conn)
        await prune_maintenance_runs(conn)

    jobs = [MaintenanceJob("retention", RETENTION_INTERVAL, enforce_retention)]
    if backend is Backend.POSTGRESQL:
        jobs.insert(
            0, MaintenanceJob("rollup-refresh", settings.rollup_refresh_interval, refresh_rollups)
        )
    return jobs


async def maintain(settings: Settings, stop: asyncio.Event) -> None:
    """Check (or migrate) the schema, then run the jobs whenever this process leads."""
    async with open_database(settings) as dsn:
        backend = (await upgrade_database(dsn, settings)).backend
        runner = MaintenanceRunner(dsn, maintenance_jobs(backend, settings))
        print(f"maintenance runner {runner.runner_id} started ({backend.value})", flush=True)
        await runner.run(stop)
        logger.info("maintenance runner %s stopped", runner.runner_id)


def run(settings: Settings) -> int:
    """`vpsmon maintain`: until SIGTERM or SIGINT."""
    return run_until_signalled(maintain, settings)
