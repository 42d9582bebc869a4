"""The storage contract, run against every backend: each row of the three rollup
views equals an independent Python computation over the raw rows, through
out-of-order and late inserts, gaps, and rows newer than any refresh."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from command_side.vps_commands import register_vps
from tests.support.dataset import floor_to, one_second_samples
from tests.support.rollups import VIEWS, Store, assert_view_matches
from vpsmon.metrics import METRICS
from vpsmon.metrics import MetricRow as Row


async def test_views_have_the_contract_columns(store: Store) -> None:
    expected = [
        ("bucket", "timestamp with time zone"),
        ("vps_id", "integer"),
        ("samples", "bigint"),
    ]
    for metric in METRICS:
        kind = "double precision" if metric == "cpu_usage_percent" else "bigint"
        expected += [
            (f"{metric}_avg", "double precision"),
            (f"{metric}_min", kind),
            (f"{metric}_max", kind),
            (f"{metric}_sum", "double precision" if kind == "double precision" else "numeric"),
        ]
    for view in VIEWS:
        columns = await store.conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            view,
        )
        assert [(c["column_name"], c["data_type"]) for c in columns] == expected, view


async def test_views_equal_python_rollups_through_late_and_fresh_rows(store: Store) -> None:
    rng = random.Random(20261126)
    conn = store.conn
    vps_ids = [(await register_vps(conn, f"host-{i}")).vps_id for i in range(3)]
    now: datetime = await conn.fetchval("SELECT now()")
    start = floor_to(now - timedelta(hours=4), timedelta(hours=1)) + timedelta(minutes=17)

    history: list[Row] = []
    gaps = {
        vps_ids[0]: [(start + timedelta(minutes=50), start + timedelta(minutes=71))],
        # Swallows a whole hour bucket and crosses 5m boundaries.
        vps_ids[1]: [(start + timedelta(minutes=40), start + timedelta(hours=2, minutes=3))],
        vps_ids[2]: [
            (
                start + timedelta(hours=3, minutes=1, seconds=7),
                start + timedelta(hours=3, minutes=2, seconds=55),
            )
        ],
    }
    for vps_id in vps_ids:
        history += one_second_samples(rng, vps_id, start, now, gaps[vps_id])

    # Held back until after the first refresh: they land in buckets that are
    # already materialized (some of them in buckets that were empty).
    late_window = (start + timedelta(hours=1, minutes=58), start + timedelta(hours=2, minutes=9))
    late = [
        r
        for r in history
        if (r[1] == vps_ids[0] and late_window[0] <= r[0] < late_window[1])
        or (r[1] == vps_ids[2] and r[0] < start + timedelta(hours=1) and rng.random() < 0.1)
    ]
    late_set = set(late)
    on_time = [r for r in history if r not in late_set]
    rng.shuffle(on_time)

    await store.append(on_time)
    await store.refresh()
    rng.shuffle(late)
    await store.append(late)
    await store.refresh()

    # Newer than any refresh: only real-time aggregation can show these.
    fresh_from: datetime = await conn.fetchval("SELECT now() - interval '50 seconds'")
    fresh = one_second_samples(rng, vps_ids[1], fresh_from, fresh_from + timedelta(seconds=50))
    await store.append(fresh)

    everything = history + fresh
    for view in VIEWS:
        buckets = await assert_view_matches(conn, view, everything)
        assert buckets > 0
    raw_count = await conn.fetchval("SELECT count(*) FROM performance_metrics")
    assert raw_count == len(everything)
