"""Retention on every backend: raw rows and rollup buckets past their periods go,
what remains stays exactly right, also after the next refresh."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from command_side.vps_commands import register_vps
from tests.databases import StorageServer
from tests.storage.dataset import one_second_samples
from tests.storage.store import VIEWS, Store, assert_view_matches, migrated_store
from vpsmon.metrics import MetricRow as Row
from vpsmon.settings import RetentionSettings, Settings
from vpsmon.storage.backend import Backend

RETENTION = RetentionSettings(
    raw=timedelta(hours=6),
    rollup_1m=timedelta(hours=8),
    rollup_5m=timedelta(hours=10),
    rollup_1h=timedelta(hours=12),
)
KEEP = {
    "performance_metrics": RETENTION.raw,
    "performance_metrics_1m": RETENTION.rollup_1m,
    "performance_metrics_5m": RETENTION.rollup_5m,
    "performance_metrics_1h": RETENTION.rollup_1h,
}


async def deletion_granularity(store: Store, relation: str) -> timedelta:
    """TimescaleDB drops whole chunks, so rows up to one chunk older than the cutoff may stay."""
    if store.backend is Backend.POSTGRESQL:
        return timedelta(0)
    intervals: list[timedelta] = [
        row["time_interval"]
        for row in await store.conn.fetch(
            "SELECT d.time_interval FROM timescaledb_information.dimensions d"
            " LEFT JOIN timescaledb_information.continuous_aggregates c"
            "   ON c.materialization_hypertable_name = d.hypertable_name"
            " LEFT JOIN vpsmon_rollups.rollup_relations r"
            "   ON r.relation = c.view_schema || '.' || c.view_name"
            " WHERE coalesce(r.view, d.hypertable_name) = $1",
            relation,
        )
    ]
    assert intervals, relation
    return max(intervals)


async def test_retention_removes_old_rows_and_keeps_the_rest_correct(
    storage_server: StorageServer, fresh_database: str
) -> None:
    settings = Settings(
        backend=storage_server.backend,
        retention=RETENTION,
        timescale_chunk_interval=timedelta(minutes=30),
    )
    async with migrated_store(fresh_database, storage_server.name, settings) as store:
        conn = store.conn
        if store.backend is Backend.TIMESCALEDB:
            # The history below is loaded at once rather than over 14 hours, so
            # TimescaleDB's scheduler must not drop raw chunks before the first
            # refresh has rolled them up; enforce_retention runs the jobs itself.
            await conn.execute(
                "SELECT alter_job(job_id, scheduled => false)"
                " FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
            )
        rng = random.Random(5)
        vps_ids = [(await register_vps(conn, f"r{i}")).vps_id for i in range(2)]
        now: datetime = await conn.fetchval("SELECT now()")
        rows: list[Row] = []
        for vps_id in vps_ids:
            rows += one_second_samples(rng, vps_id, now - timedelta(hours=14), now)[::20]
        await store.append(rows)
        await store.refresh(all_history=True)

        before: datetime = await conn.fetchval("SELECT clock_timestamp()")
        await store.enforce_retention()
        await store.refresh()  # a refresh after retention must not lose what remains
        after: datetime = await conn.fetchval("SELECT clock_timestamp()")

        # Anything older than `cutoff` must be gone, anything newer than `keep_from` kept.
        cutoff = {relation: before - keep for relation, keep in KEEP.items()}
        keep_from = {relation: after - keep for relation, keep in KEEP.items()}
        raw_granularity = await deletion_granularity(store, "performance_metrics")
        kept = await conn.fetch("SELECT time, vps_id FROM performance_metrics")
        kept_times = [r["time"] for r in kept]
        assert len(kept) < len(rows)
        assert min(kept_times) >= cutoff["performance_metrics"] - raw_granularity
        newer = {(r[0], r[1]) for r in rows if r[0] >= keep_from["performance_metrics"]}
        assert newer <= {(r["time"], r["vps_id"]) for r in kept}

        for view, width in VIEWS.items():
            granularity = await deletion_granularity(store, view)
            oldest: datetime = await conn.fetchval(f"SELECT min(bucket) FROM {view}")
            assert oldest >= cutoff[view] - granularity - width, view
            await assert_view_matches(conn, view, rows, complete_from=keep_from[view])
        if store.backend is Backend.POSTGRESQL:
            # Exact deletion here: something older than each view's cutoff existed and went.
            for view in VIEWS:
                assert (
                    await conn.fetchval(f"SELECT min(bucket) FROM {view}")
                    >= cutoff[view] - VIEWS[view]
                )


async def test_retention_periods_follow_the_settings(
    storage_server: StorageServer, fresh_database: str
) -> None:
    settings = Settings(backend=storage_server.backend, retention=RETENTION)
    async with migrated_store(fresh_database, storage_server.name, settings) as store:
        rows = await store.conn.fetch("SELECT relation, keep FROM retention_policy")
        stored = {row["relation"]: row["keep"] for row in rows}
        assert stored == KEEP
        if store.backend is Backend.TIMESCALEDB:
            jobs = await store.conn.fetch(
                "SELECT coalesce(r.view, j.hypertable_name) AS relation,"
                " (j.config->>'drop_after')::interval AS drop_after"
                " FROM timescaledb_information.jobs j"
                " LEFT JOIN vpsmon_rollups.rollup_relations r"
                "   ON r.relation = j.hypertable_schema || '.' || j.hypertable_name"
                " WHERE j.proc_name = 'policy_retention'"
            )
            assert {job["relation"]: job["drop_after"] for job in jobs} == KEEP


async def test_retention_settings_reject_a_window_outside_raw_retention() -> None:
    with pytest.raises(ValueError, match="at least 6h"):
        RetentionSettings(raw=timedelta(hours=2))
    with pytest.raises(ValueError, match="must not shrink"):
        RetentionSettings(raw=timedelta(days=30), rollup_1m=timedelta(days=7))
    with pytest.raises(ValueError, match="invalid duration"):
        RetentionSettings.model_validate({"raw": "fortnight"})
