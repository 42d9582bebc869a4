"""The timeseries data layer, on every backend: each point equals an independent
Python rollup of the raw rows, for direct and re-aggregated widths, ranges that
start mid-bucket, gaps, late and out-of-order rows, and rows newer than any
refresh; plus the planning rules (sources, auto, errors) without a database."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from command_side.vps_commands import register_vps
from query_side.timeseries import TimeseriesPlan, fetch_timeseries, plan_timeseries
from tests.support.databases import StorageServer, throwaway_database
from tests.support.dataset import expected_rollup, floor_to, one_second_samples, sample
from tests.support.rollups import Store, migrated_store
from vpsmon.errors import IntervalError
from vpsmon.metrics import METRICS
from vpsmon.metrics import MetricRow as Row
from vpsmon.settings import Settings

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


# Planning ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "label", "source"),
    [
        ("1m", "1m", "performance_metrics_1m"),
        ("5m", "5m", "performance_metrics_5m"),
        ("1h", "1h", "performance_metrics_1h"),
        ("7m", "7m", "performance_metrics_1m"),
        ("120s", "2m", "performance_metrics_1m"),
        ("15m", "15m", "performance_metrics_5m"),
        ("90m", "90m", "performance_metrics_5m"),
        ("60m", "1h", "performance_metrics_1h"),
        ("6h", "6h", "performance_metrics_1h"),
        ("1d", "1d", "performance_metrics_1h"),
        ("7d", "1w", "performance_metrics_1h"),
    ],
)
def test_plan_reads_the_coarsest_view_that_divides_the_interval(
    interval: str, label: str, source: str
) -> None:
    plan = plan_timeseries(interval, T0, T0 + timedelta(days=1))
    assert (plan.interval, plan.source) == (label, source)


@pytest.mark.parametrize(
    ("span", "label"),
    [
        (timedelta(hours=1), "1m"),
        (timedelta(hours=24), "5m"),
        (timedelta(days=7), "30m"),
        (timedelta(days=30), "2h"),
        (timedelta(days=365), "1d"),
        # Nothing on the ladder fits: the coarsest step, still under max_buckets.
        (timedelta(days=3650), "1w"),
    ],
)
def test_auto_picks_the_finest_step_within_the_target(span: timedelta, label: str) -> None:
    plan = plan_timeseries("auto", T0, T0 + span)
    assert plan.interval == label
    assert plan.bucket_count <= 500 or label == "1w"


def test_auto_counts_the_partial_first_bucket() -> None:
    # 500 minutes from mid-minute touch 501 one-minute buckets.
    start = T0 + timedelta(seconds=30)
    assert plan_timeseries("auto", start, start + timedelta(minutes=500)).interval == "5m"
    assert plan_timeseries("auto", T0, T0 + timedelta(minutes=500)).interval == "1m"


def test_plan_keeps_the_range_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    plan = plan_timeseries("5m", T0.astimezone(plus_two), T0.astimezone(plus_two) + timedelta(1))
    assert plan == TimeseriesPlan(
        "5m", timedelta(minutes=5), "performance_metrics_5m", T0, T0 + timedelta(days=1)
    )
    assert plan.start.tzinfo is UTC


@pytest.mark.parametrize("interval", ["abc", "", "0m", "90s", "30s", "1.5h", "8d", "2w", "-5m"])
def test_bad_intervals_say_which_are_allowed(interval: str) -> None:
    with pytest.raises(IntervalError, match="interval must be 'auto' or a whole number"):
        plan_timeseries(interval, T0, T0 + timedelta(hours=1))


@pytest.mark.parametrize("end", [T0, T0 - timedelta(seconds=1)])
def test_start_must_be_before_end(end: datetime) -> None:
    with pytest.raises(IntervalError, match=r"^start_time must be before end_time$"):
        plan_timeseries("1m", T0, end)


def test_naive_times_are_rejected() -> None:
    with pytest.raises(IntervalError, match="time zone"):
        plan_timeseries("1m", T0.replace(tzinfo=None), T0 + timedelta(hours=1))


def test_too_many_buckets() -> None:
    with pytest.raises(IntervalError) as raised:
        plan_timeseries("1m", T0, T0 + timedelta(days=8))
    assert str(raised.value) == (
        "too many buckets (11520 > 10000); choose a coarser interval or a shorter range"
    )
    # The bucket holding a mid-bucket start counts: 00:30 to 02:00 touches two.
    start, end = T0 + timedelta(seconds=30), T0 + timedelta(minutes=2)
    assert plan_timeseries("1m", start, end, max_buckets=2).bucket_count == 2
    with pytest.raises(IntervalError, match=r"too many buckets \(2 > 1\)"):
        plan_timeseries("1m", start, end, max_buckets=1)
    with pytest.raises(IntervalError, match="too many buckets"):
        plan_timeseries("auto", T0, T0 + timedelta(days=3650), max_buckets=100)


# Against the databases --------------------------------------------------


@dataclass
class History:
    store: Store
    vps_ids: list[int]
    rows: list[Row]
    begin: datetime  # the first sample
    now: datetime  # after the last sample


def twenty_second_samples(
    rng: random.Random,
    vps_id: int,
    start: datetime,
    end: datetime,
    gaps: list[tuple[datetime, datetime]],
) -> list[Row]:
    """One sample somewhere in each 20 s slot of [start, end), skipping the gaps."""
    rows = []
    slot = start
    while slot < end:
        moment = slot + timedelta(milliseconds=rng.randrange(20_000))
        if moment < end and not any(g0 <= moment < g1 for g0, g1 in gaps):
            rows.append(sample(rng, vps_id, moment))
        slot += timedelta(seconds=20)
    return rows


@pytest.fixture(scope="module")
async def history(storage_server: StorageServer, storage_template: str) -> AsyncIterator[History]:
    """50 h for two VPSes (so 1d spans UTC days), loaded once per backend for every query test.

    Module-scoped, unlike ``migrated_database``, so that loading happens once and
    the read-only tests below stay fast; the database is made and dropped the
    same way.
    """
    async with throwaway_database(storage_server.dsn, storage_template) as dsn:
        settings = Settings(backend=storage_server.backend)
        async with migrated_store(dsn, storage_server.name, settings) as store:
            yield await _load(store)


async def _load(store: Store) -> History:
    rng = random.Random(20260310)
    conn = store.conn
    # A third VPS that never gets data.
    vps_ids = [(await register_vps(conn, f"host-{i}")).vps_id for i in range(3)]
    a, b = vps_ids[:2]
    now: datetime = await conn.fetchval("SELECT now()")
    begin = floor_to(now - timedelta(hours=50), timedelta(minutes=1)) + timedelta(seconds=7)
    hour = floor_to(now - timedelta(hours=30), timedelta(hours=1))
    rows = twenty_second_samples(
        rng,
        a,
        begin,
        now,
        # Swallows whole hours and part of a 6 h bucket; ends mid-minute.
        [(hour + timedelta(minutes=13), hour + timedelta(hours=3, minutes=4, seconds=40))],
    )
    rows += twenty_second_samples(
        rng, b, begin, now, [(hour - timedelta(minutes=26), hour + timedelta(minutes=9))]
    )
    # A denser stretch, so some buckets hold many samples; a VPS has one sample a
    # moment, so a dense one that lands on a 20 s one's millisecond is left out.
    dense = hour - timedelta(hours=5, minutes=40)
    taken = {(row[1], row[0]) for row in rows}
    rows += [
        row
        for row in one_second_samples(rng, a, dense, dense + timedelta(minutes=35))
        if (row[1], row[0]) not in taken
    ]

    # Rows inserted after the first refresh, into materialized buckets.
    late_from, late_to = hour - timedelta(hours=9), hour - timedelta(hours=8, minutes=50)
    late = [r for r in rows if late_from <= r[0] < late_to or rng.random() < 0.01]
    late_set = set(late)
    on_time = [r for r in rows if r not in late_set]
    rng.shuffle(on_time)
    rng.shuffle(late)
    await store.append(on_time)
    await _refresh(store)
    await store.append(late)
    await _refresh(store)

    # Newer than any refresh: only real-time aggregation shows them.
    fresh_from: datetime = await conn.fetchval("SELECT now() - interval '30 seconds'")
    for vps_id in (a, b):
        fresh = one_second_samples(rng, vps_id, fresh_from, fresh_from + timedelta(seconds=30))
        await store.append(fresh)
        rows += fresh
    assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == len(rows)
    return History(store, vps_ids, rows, begin, fresh_from + timedelta(seconds=30))


async def _refresh(store: Store) -> None:
    """Refresh all history, waiting out a policy job that refreshes at the same moment.

    On TimescaleDB the refresh policies that migrate installs start on the
    server's scheduler in the new database and can overlap a manual refresh.
    """
    for _ in range(100):
        try:
            await store.refresh(all_history=True)
            return
        except asyncpg.LockNotAvailableError:
            await asyncio.sleep(0.1)
    await store.refresh(all_history=True)


def _ranges(h: History) -> dict[str, tuple[datetime, datetime]]:
    mid = floor_to(h.now - timedelta(hours=37), timedelta(hours=1))
    return {
        "everything": (h.begin - timedelta(hours=2), h.now + timedelta(minutes=10)),
        # Starts and ends inside buckets of every width.
        "mid_bucket": (
            mid + timedelta(minutes=37, seconds=13),
            mid + timedelta(hours=31, minutes=2, seconds=1),
        ),
        "last_hour": (h.now - timedelta(hours=1), h.now),
        "before_any_data": (h.begin - timedelta(days=3), h.begin - timedelta(days=2)),
    }


RANGES = ["everything", "mid_bucket", "last_hour", "before_any_data"]
INTERVALS = ["1m", "5m", "1h", "15m", "7m", "6h", "1d", "auto"]


def _expected(
    rows: list[Row], vps_id: int, plan: TimeseriesPlan
) -> list[tuple[datetime, int, list[float | int], list[float | int], list[float | int]]]:
    """Raw rows of ``vps_id`` by floor(time, width), for buckets starting in [floor(start), end)."""
    lower = floor_to(plan.start, plan.width)
    buckets = expected_rollup((r for r in rows if r[1] == vps_id), plan.width)
    return [
        (start, b.samples, b.sums, b.mins, b.maxs)
        for (_, start), b in sorted(buckets.items())
        if lower <= start < plan.end
    ]


POINT_KEYS = {"time", "samples"} | {f"{m}_{s}" for m in METRICS for s in ("avg", "min", "max")}


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("range_name", RANGES)
async def test_points_equal_python_rollups_of_the_raw_rows(
    history: History, interval: str, range_name: str
) -> None:
    start, end = _ranges(history)[range_name]
    plan = plan_timeseries(interval, start, end)
    for vps_id in history.vps_ids[:2]:
        points = await fetch_timeseries(history.store.conn, vps_id, plan)
        expected = _expected(history.rows, vps_id, plan)
        where = f"vps {vps_id} {plan.interval} from {plan.source}"
        assert [p["time"] for p in points] == [e[0] for e in expected], where
        for point, (time, samples, sums, mins, maxs) in zip(points, expected, strict=True):
            assert set(point) == POINT_KEYS, where
            assert isinstance(point["time"], datetime)
            assert point["time"].utcoffset() == timedelta(0)
            assert type(point["samples"]) is int
            assert point["samples"] == samples, f"{where} {time}: samples"
            for i, metric in enumerate(METRICS):
                kind = float if metric == "cpu_usage_percent" else int
                low, high, avg = (point[f"{metric}_{s}"] for s in ("min", "max", "avg"))
                assert type(low) is kind, f"{where} {metric}: min type"
                assert type(high) is kind, f"{where} {metric}: max type"
                assert (low, high) == (mins[i], maxs[i]), f"{where} {time} {metric}: min/max"
                assert isinstance(avg, float), f"{where} {metric}: avg type"
                assert math.isclose(avg, sums[i] / samples, rel_tol=1e-9), (
                    f"{where} {time} {metric}: avg"
                )
        # Guards the ranges: each holds data for both VPSes, or none at all.
        assert bool(points) == (range_name != "before_any_data"), where


async def test_the_ranges_exercise_what_they_are_meant_to(history: History) -> None:
    """Guards the dataset: auto goes through a re-aggregated width, fresh rows are in range."""
    ranges = _ranges(history)
    autos = {name: plan_timeseries("auto", *ranges[name]) for name in RANGES}
    assert autos["everything"].interval == "10m"  # re-aggregated from the 5m view
    assert autos["mid_bucket"].interval == "5m"
    assert autos["last_hour"].interval == "1m"
    day = plan_timeseries("1d", *ranges["everything"])
    points = await fetch_timeseries(history.store.conn, history.vps_ids[0], day)
    assert len(points) >= 3  # 50 h always touches three UTC days


async def test_a_vps_without_data_has_no_points(history: History) -> None:
    start, end = _ranges(history)["everything"]
    for interval in ("1m", "15m", "1d"):
        plan = plan_timeseries(interval, start, end)
        assert await fetch_timeseries(history.store.conn, history.vps_ids[2], plan) == []
