"""Generated rollup migrations on a real database of every backend.

0012 takes over what 0002 wrote by hand without recomputing anything: every
materialized bucket stays, also those whose raw rows are gone. And the way
the next metrics will come (a new group, rendered but not in the tree) gives
views with the new columns, correct through refreshes and late rows.
"""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import asyncpg

from command_side.vps_commands import register_vps
from projections.refresh_lag import rollup_watermarks
from projections.rollup_sql import GENERATED_MIGRATIONS, GeneratedMigration, RollupSchema, render
from projections.rollups import refresh_rollups
from tests.support.databases import StorageServer, login_role
from tests.support.dataset import expected_rollup, floor_to, one_second_samples
from tests.support.rollups import VIEWS, assert_view_matches
from vpsmon.metrics import CORE_METRICS, METRIC_COLUMNS, Metric, MetricGroup
from vpsmon.metrics import MetricRow as Row
from vpsmon.rollup_levels import LEVELS
from vpsmon.settings import Settings
from vpsmon.storage.backend import Backend
from vpsmon.storage.migrations import load_migrations, migrate, migrations_dir
from vpsmon.storage.policies import apply_policies

TAKEOVER = GENERATED_MIGRATIONS[0].version
HOST = MetricGroup(
    "host", (Metric("load_1m", "double precision"), Metric("swap_used_bytes", "bigint"))
)
HOST_COLUMNS = ["host_samples"] + [
    f"{metric.name}_{kind}" for metric in HOST.metrics for kind in ("avg", "min", "max", "sum")
]


def copy_migrations(directory: Path, below: int | None = None) -> Path:
    """The tree's migrations (same bytes, same checksums), those before ``below`` if given."""
    directory.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if below is None or int(path.name[:4]) < below:
            shutil.copy(path, directory / path.name)
    return directory


async def view_rows(conn: asyncpg.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {
        view: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {view} ORDER BY vps_id, bucket")]
        for view in VIEWS
    }


async def definitions(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """The plain-PostgreSQL views and aggregate functions, as the server prints them."""
    rows = [
        (view, await conn.fetchval("SELECT pg_get_viewdef($1::regclass)", view)) for view in VIEWS
    ]
    for level in LEVELS:
        name = f"vpsmon_rollups.aggregate_{level.name}(timestamptz, timestamptz)"
        rows.append(
            (
                name,
                await conn.fetchval(
                    "SELECT prosrc FROM pg_proc WHERE oid = $1::regprocedure", name
                ),
            )
        )
    return rows


async def materialize_as_0002_did(
    conn: asyncpg.Connection, backend: Backend, now: datetime
) -> None:
    """Refresh everything with the SQL of the schema before 0012 (today's code needs 0012)."""
    for level in LEVELS:
        until = level.floor(now - timedelta(hours=1))
        if backend is Backend.TIMESCALEDB:
            await conn.execute(
                "CALL refresh_continuous_aggregate($1::regclass, NULL, $2::timestamptz)",
                level.view,
                until,
            )
            continue
        await conn.execute(
            f"INSERT INTO vpsmon_rollups.data_{level.name}"
            f" SELECT * FROM vpsmon_rollups.aggregate_{level.name}('-infinity', $1)",
            until,
        )
        await conn.execute(
            "UPDATE vpsmon_rollups.watermarks SET materialized_until = $2 WHERE rollup = $1",
            level.name,
            until,
        )


async def test_the_takeover_keeps_every_materialized_bucket(
    storage_server: StorageServer, fresh_database: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        old = copy_migrations(tmp_path / "before", below=TAKEOVER)
        backend = (await migrate(conn, storage_server.backend, old)).backend
        vps_id = (await register_vps(conn, "web-1")).vps_id
        now: datetime = await conn.fetchval("SELECT now()")
        rows = one_second_samples(random.Random(12), vps_id, now - timedelta(hours=4), now)[::15]
        await conn.copy_records_to_table(
            "performance_metrics", records=rows, columns=METRIC_COLUMNS
        )
        await materialize_as_0002_did(conn, backend, now)
        # Retention took the raw rows: only the materialized buckets remain.
        await conn.execute("DELETE FROM performance_metrics")
        before = await view_rows(conn)
        assert all(before.values())
        columns_before = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name LIKE 'performance_metrics_%'"
            " ORDER BY table_name, ordinal_position"
        )
        old_definitions = await definitions(conn) if backend is Backend.POSTGRESQL else []

        report = await migrate(conn, storage_server.backend)

        assert TAKEOVER in [m.version for m in report.applied]
        assert await view_rows(conn) == before
        assert columns_before == await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name LIKE 'performance_metrics_%'"
            " ORDER BY table_name, ordinal_position"
        )
        if backend is Backend.POSTGRESQL:
            assert await definitions(conn) == old_definitions
        catalog = await conn.fetch(
            "SELECT view, metric_group, relation FROM vpsmon_rollups.rollup_relations ORDER BY 1"
        )
        assert [tuple(r) for r in catalog] == sorted(
            (level.view, "core", f"vpsmon_rollups.data_{level.name}") for level in LEVELS
        )
    finally:
        await conn.close()


def host_migration() -> tuple[GeneratedMigration, ...]:
    """The tree's generated migrations and one more for HOST, after every file in the tree."""
    version = max(m.version for m in load_migrations(Backend.POSTGRESQL)) + 1
    schema = RollupSchema(LEVELS, (CORE_METRICS, HOST))
    return (*GENERATED_MIGRATIONS, GeneratedMigration(version, "host_metrics", schema))


def host_sample(rng: random.Random) -> tuple[float, int]:
    return rng.uniform(0.0, 16.0), rng.randrange(0, 1 << 33)


async def test_a_new_metric_group_joins_the_views(
    storage_server: StorageServer, fresh_database: str, tmp_path: Path
) -> None:
    registry = host_migration()
    directory = copy_migrations(tmp_path / "with-host")
    for backend_name in ("postgresql", "timescaledb"):
        migration = registry[-1]
        (directory / migration.filename(backend_name)).write_text(
            render(migration, backend_name, registry), encoding="utf-8"
        )
    settings = Settings(backend=storage_server.backend)
    conn = await asyncpg.connect(fresh_database)
    try:
        backend = (await migrate(conn, storage_server.backend, directory)).backend
        await apply_policies(conn, backend, settings)
        for view in VIEWS:
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                view,
            )
            names = [c["column_name"] for c in columns]
            assert names[-len(HOST_COLUMNS) :] == HOST_COLUMNS, view
            assert names[: -len(HOST_COLUMNS)] == ["bucket", "vps_id", "samples"] + [
                f"{m.name}_{kind}"
                for m in CORE_METRICS.metrics
                for kind in ("avg", "min", "max", "sum")
            ]

        rng = random.Random(99)
        vps_ids = [(await register_vps(conn, f"host-{i}")).vps_id for i in range(2)]
        now: datetime = await conn.fetchval("SELECT now()")
        start = floor_to(now - timedelta(hours=3), timedelta(hours=1)) + timedelta(minutes=7)
        core: list[Row] = []
        for vps_id in vps_ids:
            core += one_second_samples(rng, vps_id, start, now)[::10]
        # An old agent sends no host metrics: the first VPS only from an hour on.
        hour_later = start + timedelta(hours=1)
        host = {
            (row[0], row[1]): host_sample(rng)
            for row in core
            if row[1] == vps_ids[1] or row[0] >= hour_later
        }
        late_window = (start + timedelta(minutes=80), start + timedelta(minutes=95))
        late = [r for r in core if r[1] == vps_ids[1] and late_window[0] <= r[0] < late_window[1]]
        held_back = set(late)
        on_time = [r for r in core if r not in held_back]

        async def append(rows: list[Row]) -> None:
            records = [(*row, *host.get((row[0], row[1]), (None, None))) for row in rows]
            await conn.copy_records_to_table(
                "performance_metrics",
                records=records,
                columns=[*METRIC_COLUMNS, "load_1m", "swap_used_bytes"],
            )

        await append(on_time)
        async with login_role(fresh_database, "vpsmon_ingest") as ingest_dsn:
            # The maintenance runner refreshes as the command side's role.
            ingest = await asyncpg.connect(ingest_dsn)
            try:
                if backend is Backend.POSTGRESQL:
                    await refresh_rollups(ingest, backend, settings.retention)
                else:
                    await refresh_rollups(conn, backend, settings.retention, all_history=True)
                await append(late)  # below the watermarks now: the late-row path
                if backend is Backend.POSTGRESQL:
                    await refresh_rollups(ingest, backend, settings.retention)
                else:
                    await refresh_rollups(conn, backend, settings.retention)
            finally:
                await ingest.close()

        watermarks = await rollup_watermarks(conn, backend)
        assert all(watermarks[level.name] is not None for level in LEVELS), watermarks
        for view, width in VIEWS.items():
            await assert_view_matches(conn, view, core)
            host_rows = [(t, v, *values) for (t, v), values in host.items()]
            # expected_rollup only indexes its rows: time, vps_id, then the values.
            expected = expected_rollup(cast(list[Row], host_rows), width)
            actual = await conn.fetch(
                f"SELECT * FROM {view} WHERE host_samples IS NOT NULL ORDER BY vps_id, bucket"
            )
            assert {(r["vps_id"], r["bucket"]) for r in actual} == set(expected), view
            for row in actual:
                bucket = expected[(row["vps_id"], row["bucket"])]
                assert row["host_samples"] == bucket.samples
                assert row["swap_used_bytes_sum"] == bucket.sums[1]
                assert (row["swap_used_bytes_min"], row["swap_used_bytes_max"]) == (
                    bucket.mins[1],
                    bucket.maxs[1],
                )
                assert (row["load_1m_min"], row["load_1m_max"]) == (bucket.mins[0], bucket.maxs[0])
                assert abs(row["load_1m_avg"] - bucket.sums[0] / bucket.samples) < 1e-9
        if backend is Backend.POSTGRESQL:
            materialized = await conn.fetchval("SELECT count(*) FROM vpsmon_rollups.host_1m")
            assert materialized > 0
    finally:
        await conn.close()
