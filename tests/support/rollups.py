"""A migrated database on one backend, and assertions on its rollup views."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

from projections.rollups import enforce_retention, refresh_rollups
from tests.support.dataset import expected_rollup
from vpsmon.metrics import METRIC_COLUMNS, METRICS
from vpsmon.metrics import MetricRow as Row
from vpsmon.settings import Settings
from vpsmon.storage.backend import Backend
from vpsmon.storage.schema import upgrade_schema

VIEWS = {
    "performance_metrics_1m": timedelta(minutes=1),
    "performance_metrics_5m": timedelta(minutes=5),
    "performance_metrics_1h": timedelta(hours=1),
}


class Store:
    def __init__(self, conn: asyncpg.Connection, backend: Backend, settings: Settings) -> None:
        self.conn = conn
        self.backend = backend
        self.settings = settings

    async def append(self, rows: Sequence[Row], batch_size: int = 700) -> None:
        for i in range(0, len(rows), batch_size):
            await self.conn.copy_records_to_table(
                "performance_metrics", records=rows[i : i + batch_size], columns=METRIC_COLUMNS
            )

    async def refresh(self, *, all_history: bool = False) -> None:
        await refresh_rollups(
            self.conn, self.backend, self.settings.retention, all_history=all_history
        )

    async def enforce_retention(self) -> None:
        await enforce_retention(self.conn, self.backend)


@asynccontextmanager
async def migrated_store(dsn: str, backend_name: str, settings: Settings) -> AsyncIterator[Store]:
    conn = await asyncpg.connect(dsn)
    try:
        report = await upgrade_schema(conn, settings)
        assert report.backend.value == backend_name
        yield Store(conn, report.backend, settings)
    finally:
        await conn.close()


async def assert_view_matches(
    conn: asyncpg.Connection,
    view: str,
    rows: Sequence[Row],
    *,
    complete_from: datetime | None = None,
) -> int:
    """Every bucket in the view equals the Python rollup of ``rows``.

    Every expected bucket must be in the view, or only those starting at or
    after ``complete_from`` when retention has removed older ones.
    """
    expected = expected_rollup(rows, VIEWS[view])
    actual = {
        (r["vps_id"], r["bucket"]): r
        for r in await conn.fetch(f"SELECT * FROM {view} ORDER BY vps_id, bucket")
    }
    required = {k for k in expected if complete_from is None or k[1] >= complete_from}
    missing = sorted(required - set(actual))[:5]
    extra = sorted(set(actual) - set(expected))[:5]
    assert not missing, f"{view}: missing buckets {missing}"
    assert not extra, f"{view}: unexpected buckets {extra}"
    for key, row in actual.items():
        bucket = expected[key]
        assert row["samples"] == bucket.samples, f"{view} {key}: samples"
        for i, metric in enumerate(METRICS):
            where = f"{view} {key} {metric}"
            assert row[f"{metric}_min"] == bucket.mins[i], f"{where}: min"
            assert row[f"{metric}_max"] == bucket.maxs[i], f"{where}: max"
            total = row[f"{metric}_sum"]
            if isinstance(total, Decimal):
                assert total == bucket.sums[i], f"{where}: sum"
            else:
                assert math.isclose(total, bucket.sums[i], rel_tol=1e-12), f"{where}: sum"
            assert math.isclose(
                row[f"{metric}_avg"], bucket.sums[i] / bucket.samples, rel_tol=1e-12
            ), f"{where}: avg"
    return len(actual)
