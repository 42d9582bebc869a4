"""Migration 0010 on a database that already stored some samples twice: one of
each stays, rollups stop counting the repeats, and the index refuses new ones."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from projections.rollups import refresh_rollups
from tests.databases import StorageServer
from vpsmon.metrics import METRIC_COLUMNS, MetricRow
from vpsmon.settings import RetentionSettings
from vpsmon.storage.backend import Backend
from vpsmon.storage.migrations import migrate, migrations_dir

UNIQUE_SAMPLES = 10


def without_unique_samples(directory: Path) -> Path:
    """A copy of every migration but 0010 (same bytes, same checksums).

    The later ones are independent of 0010 and the refresh code of today
    needs them (the generated rollup functions of 0012), so they come first
    here and 0010 is the one migration left to apply.
    """
    directory.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if int(path.name[:4]) != UNIQUE_SAMPLES:
            shutil.copy(path, directory / path.name)
    return directory


async def samples_in_rollups(conn: asyncpg.Connection, backend: Backend) -> int:
    await refresh_rollups(conn, backend, RetentionSettings(), all_history=True)
    total: int = await conn.fetchval("SELECT sum(samples) FROM performance_metrics_1m")
    return total


async def test_migration_keeps_one_of_each_repeated_sample(
    storage_server: StorageServer, fresh_database: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        report = await migrate(
            conn, storage_server.backend, without_unique_samples(tmp_path / "old")
        )
        # Today's commands need a newer schema: the VPS row alone serves here.
        vps_id = await conn.fetchval(
            "INSERT INTO vps (id, name, created_at, updated_at)"
            " VALUES (nextval('vps_id_seq'), 'web-1', now(), now()) RETURNING id"
        )
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)

        def rows(count: int, cpu: float) -> list[MetricRow]:
            return [
                (start + timedelta(seconds=i), vps_id, cpu, 1, 2, 3, 4, 5, 6) for i in range(count)
            ]

        # 300 samples, the first 120 of them stored twice (under two batch ids, say).
        for batch in (rows(300, 1.0), rows(120, 2.0)):
            await conn.copy_records_to_table(
                "performance_metrics", records=batch, columns=METRIC_COLUMNS
            )
        assert await samples_in_rollups(conn, report.backend) == 420
        if report.backend is Backend.TIMESCALEDB:
            compressed = await conn.fetch(
                "SELECT compress_chunk(c) FROM show_chunks('performance_metrics') c"
            )
            assert compressed

        applied = await migrate(conn, storage_server.backend)

        # 0010 first; later migrations follow it.
        assert applied.applied[0].version == UNIQUE_SAMPLES
        assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == 300
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT DISTINCT vps_id, time FROM performance_metrics) d"
            )
            == 300
        )
        assert await samples_in_rollups(conn, report.backend) == 300
        indexes = await conn.fetch(
            "SELECT indexrelid::regclass::text AS name, indisunique FROM pg_index"
            " WHERE indrelid = 'performance_metrics'::regclass"
        )
        assert ("performance_metrics_vps_id_time_key", True) in [tuple(r) for r in indexes]
        assert "performance_metrics_vps_id_time_idx" not in [r["name"] for r in indexes]
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.copy_records_to_table(
                "performance_metrics", records=rows(1, 3.0), columns=METRIC_COLUMNS
            )
    finally:
        await conn.close()
