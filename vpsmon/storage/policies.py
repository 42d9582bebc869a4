"""Retention, refresh and compression policies, set from the settings on every migrate.

They are configuration rather than schema, so they live outside the
checksummed migrations and follow the settings when those change. The
periods are stored in ``retention_policy`` so that every process of a
deployment enforces the same ones.
"""

from __future__ import annotations

from datetime import timedelta

from vpsmon.rollup_levels import LEVELS
from vpsmon.settings import Settings
from vpsmon.storage.backend import Backend
from vpsmon.storage.rollup_catalog import rollup_relations
from vpsmon.storage.types import Connection

# How often TimescaleDB refreshes each continuous aggregate (docs/SQL.md: at
# least every minute for 1m, every five minutes for 5m and 1h).
_REFRESH_SCHEDULE = {
    "performance_metrics_1m": timedelta(minutes=1),
    "performance_metrics_5m": timedelta(minutes=5),
    "performance_metrics_1h": timedelta(minutes=5),
}


def retention_periods(settings: Settings) -> dict[str, timedelta]:
    retention = settings.retention
    return {
        "performance_metrics": retention.raw,
        "performance_metrics_1m": retention.rollup_1m,
        "performance_metrics_5m": retention.rollup_5m,
        "performance_metrics_1h": retention.rollup_1h,
    }


async def apply_policies(conn: Connection, backend: Backend, settings: Settings) -> None:
    """Make the database's policies match ``settings``; idempotent."""
    async with conn.transaction():
        await conn.execute("DELETE FROM retention_policy")
        await conn.executemany(
            "INSERT INTO retention_policy (relation, keep) VALUES ($1, $2)",
            list(retention_periods(settings).items()),
        )
    if backend is Backend.TIMESCALEDB:
        await _apply_timescale_policies(conn, settings)


async def _apply_timescale_policies(conn: Connection, settings: Settings) -> None:
    window = settings.retention.refresh_window
    await conn.execute(
        "SELECT set_chunk_time_interval('performance_metrics', $1::interval)",
        settings.timescale_chunk_interval,
    )
    # Rollup chunks hold ten times the time span, as TimescaleDB's own default.
    for row in await conn.fetch(
        "SELECT format('%I.%I', materialization_hypertable_schema,"
        " materialization_hypertable_name) AS hypertable"
        " FROM timescaledb_information.continuous_aggregates"
    ):
        await conn.execute(
            "SELECT set_chunk_time_interval($1::regclass, $2::interval)",
            row["hypertable"],
            settings.timescale_chunk_interval * 10,
        )
    # Each rollup view's metric groups live in continuous aggregates of their own.
    relations = await rollup_relations(conn)
    periods = retention_periods(settings)
    kept = {"performance_metrics": periods["performance_metrics"]}
    for level in LEVELS:
        kept |= {relation: periods[level.view] for relation in relations[level.view]}
    for relation, keep in kept.items():
        await conn.execute(
            "SELECT remove_retention_policy($1::regclass, if_exists => true)", relation
        )
        await conn.execute(
            "SELECT add_retention_policy($1::regclass, drop_after => $2::interval)", relation, keep
        )
    for level in LEVELS:
        for aggregate in relations[level.view]:
            await conn.execute(
                "SELECT remove_continuous_aggregate_policy($1::regclass, if_exists => true)",
                aggregate,
            )
            await conn.execute(
                "SELECT add_continuous_aggregate_policy($1::regclass,"
                " start_offset => $2::interval, end_offset => $3::interval,"
                " schedule_interval => $4::interval)",
                aggregate,
                window,
                level.end_offset,
                _REFRESH_SCHEDULE[level.view],
            )
    await conn.execute("SELECT remove_compression_policy('performance_metrics', if_exists => true)")
    await conn.execute(
        "SELECT add_compression_policy('performance_metrics', compress_after => $1::interval)",
        settings.compress_after,
    )
