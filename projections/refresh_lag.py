"""How far behind each rollup level's refresh is, read from the database at scrape time.

The watermark is read in one place, `rollup_watermarks`, from what each
backend records: on plain PostgreSQL the per-level watermark that
projections/postgres_rollups.py moves forward; on TimescaleDB the
invalidation threshold of the source hypertable of each of the level's
continuous aggregates (one per metric group), which every refresh
of the level (policy job or manual) raises to the end it refreshed to, with
or without new rows. Both mean "materialized up to here", so the lag means
the same on both backends.
"""

from __future__ import annotations

from datetime import datetime

from vpsmon.rollup_levels import LEVELS, RollupLevel
from vpsmon.self_metrics import RollupLagCollector
from vpsmon.storage.backend import Backend
from vpsmon.storage.types import Queryable

_POSTGRES_WATERMARKS = (
    "SELECT rollup AS level,"
    " CASE WHEN isfinite(materialized_until) THEN materialized_until END AS until"
    " FROM vpsmon_rollups.watermarks"
)
# Each level's metric groups have continuous aggregates of their own
# (vpsmon_rollups.rollup_relations); a level is as far as its slowest group.
# Before the first refresh TimescaleDB keeps its minimum time (4714 BC), which
# no client can decode: it becomes NULL, and so does the level.
_TIMESCALE_WATERMARKS = (
    "SELECT r.view,"
    " CASE WHEN bool_and(t.until > '1970-01-01') THEN min(t.until) END AS until"
    " FROM vpsmon_rollups.rollup_relations r"
    " JOIN _timescaledb_catalog.continuous_agg c"
    "  ON r.relation = c.user_view_schema || '.' || c.user_view_name"
    " LEFT JOIN LATERAL (SELECT _timescaledb_functions.to_timestamp(watermark) AS until"
    "  FROM _timescaledb_catalog.continuous_aggs_invalidation_threshold"
    "  WHERE hypertable_id = c.raw_hypertable_id) t ON true"
    " GROUP BY r.view"
)


async def rollup_watermarks(conn: Queryable, backend: Backend) -> dict[str, datetime | None]:
    """The end of each level's materialized buckets, by level name; None: never refreshed."""
    if backend is Backend.TIMESCALEDB:
        by_view = {row["view"]: row["until"] for row in await conn.fetch(_TIMESCALE_WATERMARKS)}
        return {level.name: by_view.get(level.view) for level in LEVELS}
    by_level = {row["level"]: row["until"] for row in await conn.fetch(_POSTGRES_WATERMARKS)}
    return {level.name: by_level.get(level.name) for level in LEVELS}


def refresh_lag_seconds(level: RollupLevel, watermark: datetime | None, now: datetime) -> float:
    """How far ``watermark`` is behind where a refresh at ``now`` would put it."""
    if watermark is None:
        return float("inf")
    return max(0.0, (level.materialize_until(now) - watermark).total_seconds())


async def rollup_refresh_lag(conn: Queryable, backend: Backend) -> dict[str, float]:
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    watermarks = await rollup_watermarks(conn, backend)
    return {level.name: refresh_lag_seconds(level, watermarks[level.name], now) for level in LEVELS}


async def rollup_lag_collector(conn: Queryable, backend: Backend) -> RollupLagCollector:
    """For `render_self_metrics`: the lag as of now."""
    return RollupLagCollector(await rollup_refresh_lag(conn, backend))
