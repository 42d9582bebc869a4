"""Plain-PostgreSQL rollup refresh: concurrency with ingest and with other refreshers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from command_side.vps_commands import register_vps
from projections import postgres_rollups
from projections.postgres_rollups import TimeRange, merge_ranges
from vpsmon.constants import ROLLUP_REFRESH_LOCK_KEY


async def wait_until_waiting_for_lock(conn: asyncpg.Connection, pid: int) -> None:
    """Poll pg_locks until ``pid`` waits for an advisory lock (bounded, no blind sleep)."""
    for _ in range(500):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'advisory'"
            " AND NOT granted",
            pid,
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for the threshold lock")


async def test_refresh_waits_for_an_in_flight_insert_and_includes_it(
    embedded_migrated_database: str,
) -> None:
    ingest = await asyncpg.connect(embedded_migrated_database)
    refresher = await asyncpg.connect(embedded_migrated_database)
    observer = await asyncpg.connect(embedded_migrated_database)
    try:
        vps_id = (await register_vps(ingest, "busy")).vps_id
        assert await postgres_rollups.refresh(refresher) is not None
        old = datetime.now(UTC) - timedelta(minutes=10)  # above the watermark for now
        transaction = ingest.transaction()
        await transaction.start()
        await ingest.execute(
            "INSERT INTO performance_metrics VALUES ($1, $2, 42, 1, 2, 3, 4, 5, 6)", old, vps_id
        )
        # The insert's trigger holds the shared threshold lock until commit, so
        # the refresh cannot raise the threshold past this row unseen.
        refresh = asyncio.create_task(postgres_rollups.refresh(refresher))
        await wait_until_waiting_for_lock(observer, refresher.get_server_pid())
        await transaction.commit()
        report = await refresh
        assert report is not None
        row = await observer.fetchrow(
            "SELECT samples, cpu_usage_percent_max FROM performance_metrics_1m WHERE vps_id = $1",
            vps_id,
        )
        assert row is not None
        assert (row["samples"], row["cpu_usage_percent_max"]) == (1, 42)
        materialized = await observer.fetchval(
            "SELECT count(*) FROM vpsmon_rollups.data_1m WHERE vps_id = $1", vps_id
        )
        assert materialized == 1
    finally:
        for conn in (ingest, refresher, observer):
            await conn.close()


async def test_only_one_process_refreshes_at_a_time(embedded_migrated_database: str) -> None:
    holder = await asyncpg.connect(embedded_migrated_database)
    other = await asyncpg.connect(embedded_migrated_database)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", ROLLUP_REFRESH_LOCK_KEY)
        assert await postgres_rollups.refresh(other) is None
        await holder.execute("SELECT pg_advisory_unlock($1)", ROLLUP_REFRESH_LOCK_KEY)
        assert await postgres_rollups.refresh(other) is not None
    finally:
        await holder.close()
        await other.close()


def test_late_ranges_merge_per_vps() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    merged = merge_ranges(
        [
            TimeRange(2, t, t + hour),
            TimeRange(1, t + 2 * hour, t + 3 * hour),
            TimeRange(1, t, t + hour),
            TimeRange(1, t + hour, t + 2 * hour),
            TimeRange(2, t + 5 * hour, t + 6 * hour),
        ]
    )
    assert merged == [
        TimeRange(1, t, t + 3 * hour),
        TimeRange(2, t, t + hour),
        TimeRange(2, t + 5 * hour, t + 6 * hour),
    ]
