"""The rollup refresh lag, read from each backend's watermark as the query side's role."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from projections.refresh_lag import refresh_lag_seconds, rollup_lag_collector, rollup_refresh_lag
from tests.support.databases import login_role
from tests.support.rollups import Store
from vpsmon.rollup_levels import LEVELS
from vpsmon.self_metrics import ROLLUP_REFRESH_LAG, render_self_metrics
from vpsmon.storage.backend import Backend


def test_the_lag_is_how_far_the_watermark_is_behind_the_refresh_target() -> None:
    now = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)
    for level in LEVELS:
        target = level.materialize_until(now)
        assert refresh_lag_seconds(level, target, now) == 0
        behind = target - 3 * level.width
        assert refresh_lag_seconds(level, behind, now) == 3 * level.width.total_seconds()
        assert refresh_lag_seconds(level, target + level.width, now) == 0
        assert refresh_lag_seconds(level, None, now) == math.inf


async def test_a_refresh_brings_every_level_up_to_date_as_seen_by_the_query_role(
    store: Store, migrated_database: str
) -> None:
    if store.backend is Backend.POSTGRESQL:  # TimescaleDB's own policies may already have run
        assert await rollup_refresh_lag(store.conn, store.backend) == dict.fromkeys(
            [level.name for level in LEVELS], math.inf
        )
    await store.refresh()
    async with login_role(migrated_database, "vpsmon_query") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            lag = await rollup_refresh_lag(conn, store.backend)
            page = render_self_metrics(await rollup_lag_collector(conn, store.backend))
        finally:
            await conn.close()
    assert set(lag) == {level.name for level in LEVELS}
    for level in LEVELS:
        # Zero, unless a bucket ended between the refresh and the read.
        assert 0 <= lag[level.name] <= level.width.total_seconds(), level.name
    (family,) = [
        f for f in text_string_to_metric_families(page.decode()) if f.name == ROLLUP_REFRESH_LAG
    ]
    assert {sample.labels["level"] for sample in family.samples} == set(lag)
    assert all(sample.value <= timedelta(hours=1).total_seconds() for sample in family.samples)
