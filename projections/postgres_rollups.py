"""Incremental rollup materialization on plain PostgreSQL.

The tables, triggers and watermarks are in db/migrations/0002_rollups.postgresql.sql;
the per-level functions that fill every metric group's tables are generated
(projections/rollup_sql, from migration 0012 on). A refresh
1. raises the invalidation threshold to the new watermark, under an exclusive
   advisory lock that waits for every in-flight insert, so no insert can miss
   the late-row log for a region this refresh materializes;
2. in one transaction, re-materializes the buckets that logged late rows
   touched and then moves each level's watermark forward. The views switch to
   the new state atomically at commit.

Only one process refreshes at a time (a session advisory lock); the others
skip, since the one that holds it does the same work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vpsmon.constants import (
    RETENTION_LOCK_KEY,
    ROLLUP_REFRESH_LOCK_KEY,
    ROLLUP_THRESHOLD_LOCK_KEY,
)
from vpsmon.rollup_levels import LEVELS, RollupLevel
from vpsmon.storage.types import Connection, rows_affected

logger = logging.getLogger(__name__)

_RANGE_ALIGNMENT = LEVELS[-1]  # late-row ranges are widened to whole coarsest buckets


@dataclass(frozen=True)
class TimeRange:
    vps_id: int
    start: datetime
    end: datetime


@dataclass
class RefreshReport:
    watermarks: dict[str, datetime] = field(default_factory=dict)
    recomputed_buckets: dict[str, int] = field(default_factory=dict)
    late_ranges: int = 0


async def refresh(conn: Connection, *, wait: bool = False) -> RefreshReport | None:
    """Bring every level up to date; None when another process is refreshing
    (unless ``wait``, which queues behind it)."""
    if wait:
        await conn.execute("SELECT pg_advisory_lock($1)", ROLLUP_REFRESH_LOCK_KEY)
    elif not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ROLLUP_REFRESH_LOCK_KEY):
        return None
    try:
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        targets = {level.name: level.materialize_until(now) for level in LEVELS}
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ROLLUP_THRESHOLD_LOCK_KEY)
            await conn.execute(
                "UPDATE vpsmon_rollups.refresh_state"
                " SET invalidation_threshold = greatest(invalidation_threshold, $1)",
                max(targets.values()),
            )
        async with conn.transaction():
            return await _materialize(conn, now, targets)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ROLLUP_REFRESH_LOCK_KEY)


async def _materialize(
    conn: Connection, now: datetime, targets: dict[str, datetime]
) -> RefreshReport:
    report = RefreshReport()
    late_rows = await conn.fetch(
        "DELETE FROM vpsmon_rollups.invalidations RETURNING vps_id, lowest, greatest"
    )
    ranges = merge_ranges(
        TimeRange(
            row["vps_id"],
            _RANGE_ALIGNMENT.floor(row["lowest"]),
            _RANGE_ALIGNMENT.floor(row["greatest"]) + _RANGE_ALIGNMENT.width,
        )
        for row in late_rows
    )
    report.late_ranges = len(ranges)
    keep = await _retention_periods(conn)
    for level in LEVELS:
        watermark = await conn.fetchval(
            "SELECT CASE WHEN isfinite(materialized_until) THEN materialized_until END"
            " FROM vpsmon_rollups.watermarks WHERE rollup = $1",
            level.name,
        )
        # Below the source's retention cutoff the source is incomplete: never
        # recompute a bucket from what retention left of it.
        source_keep = keep.get(level.source)
        oldest = level.ceil(now - source_keep) if source_keep is not None else None
        recomputed = 0
        for late in ranges:
            start = max(late.start, oldest) if oldest is not None else late.start
            end = min(late.end, watermark) if watermark is not None else start
            if start < end:
                recomputed += await _rematerialize(conn, level, late.vps_id, start, end)
        report.recomputed_buckets[level.name] = recomputed
        target = targets[level.name]
        if watermark is None or target > watermark:
            await conn.execute(
                f"SELECT vpsmon_rollups.materialize_{level.name}("
                "coalesce($1, '-infinity'::timestamptz), $2)",
                watermark,
                target,
            )
            await conn.execute(
                "UPDATE vpsmon_rollups.watermarks SET materialized_until = $2 WHERE rollup = $1",
                level.name,
                target,
            )
            watermark = target
        report.watermarks[level.name] = watermark
    logger.debug("rollup refresh: %s", report)
    return report


async def _rematerialize(
    conn: Connection, level: RollupLevel, vps_id: int, start: datetime, end: datetime
) -> int:
    buckets: int = await conn.fetchval(
        f"SELECT vpsmon_rollups.rematerialize_{level.name}($1, $2, $3)", vps_id, start, end
    )
    return buckets


def merge_ranges(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    """Coalesce overlapping or touching ranges of the same VPS."""
    merged: list[TimeRange] = []
    for item in sorted(ranges, key=lambda r: (r.vps_id, r.start)):
        last = merged[-1] if merged else None
        if last is not None and last.vps_id == item.vps_id and item.start <= last.end:
            merged[-1] = TimeRange(last.vps_id, last.start, max(last.end, item.end))
        else:
            merged.append(item)
    return merged


async def _retention_periods(conn: Connection) -> dict[str, timedelta]:
    rows = await conn.fetch("SELECT relation, keep FROM retention_policy")
    return {row["relation"]: row["keep"] for row in rows}


async def enforce_retention(conn: Connection) -> dict[str, int]:
    """Delete raw rows and rollup buckets past their retention periods."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_KEY):
        return {}
    try:
        deleted: dict[str, int] = {}
        keep = await _retention_periods(conn)
        raw_status = await conn.execute(
            "DELETE FROM performance_metrics WHERE time < now() - $1::interval",
            keep["performance_metrics"],
        )
        deleted["performance_metrics"] = rows_affected(raw_status)
        for level in LEVELS:
            deleted[level.view] = await conn.fetchval(
                f"SELECT vpsmon_rollups.expire_{level.name}(now() - $1::interval)",
                keep[level.view],
            )
        return deleted
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_KEY)
