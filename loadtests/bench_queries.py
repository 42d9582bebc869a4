"""History seeding and the query phase of loadtests/benchmark.py: /metrics/latest
and timeseries over HTTP, beside the same SQL through asyncpg."""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from bench_common import BenchError, Figure, RawHttp, Setup, percentile

from projections import postgres_rollups
from query_side.timeseries import fetch_timeseries, plan_timeseries
from vpsmon.metrics import METRIC_COLUMNS, MetricRow


def _history_rows(vps_ids: list[int], start: datetime, minutes: int) -> Iterator[MetricRow]:
    rnd = random.Random(7)
    total = 4 << 30
    for vps_id in vps_ids:
        moment = start
        step = timedelta(minutes=1)
        for _ in range(minutes):
            cpu = rnd.random() * 100
            yield (
                moment,
                vps_id,
                cpu,
                int(cpu * 1e7),
                total,
                int(cpu * 1000),
                int(cpu * 2000),
                int(cpu * 3000),
                int(cpu * 4000),
            )
            moment += step


def _chunks(rows: Iterator[MetricRow], size: int) -> Iterator[list[MetricRow]]:
    chunk: list[MetricRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def seed_history(setup: Setup, days: int) -> None:
    """One row per VPS per minute for `days`, then rollups, retention, vps_latest."""
    minutes = days * 24 * 60
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes)
    total = len(setup.history) * minutes
    print(f"seeding history: {len(setup.history)} VPSes x {days} days = {total:,} rows", flush=True)
    conn = await asyncpg.connect(setup.dsn)
    try:
        began = time.perf_counter()
        for chunk in _chunks(_history_rows(setup.history, start, minutes), 250_000):
            await conn.copy_records_to_table(
                "performance_metrics", records=chunk, columns=METRIC_COLUMNS
            )
        setup.timings["history_copy_s"] = time.perf_counter() - began
        setup.history_rows = total
        began = time.perf_counter()
        await postgres_rollups.refresh(conn, wait=True)
        setup.timings["rollup_refresh_s"] = time.perf_counter() - began
        began = time.perf_counter()
        await postgres_rollups.enforce_retention(conn)
        setup.timings["retention_s"] = time.perf_counter() - began
        cols = ", ".join(METRIC_COLUMNS)
        await conn.execute(
            f"INSERT INTO vps_latest ({cols})"
            f" SELECT DISTINCT ON (vps_id) {cols} FROM performance_metrics"
            " WHERE vps_id = ANY($1::int[]) ORDER BY vps_id, time DESC"
            " ON CONFLICT (vps_id) DO NOTHING",
            setup.history,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(
        "history: copy {history_copy_s:.1f} s, refresh {rollup_refresh_s:.1f} s,"
        " retention {retention_s:.1f} s".format(**setup.timings),
        flush=True,
    )


async def phase_queries(setup: Setup, http_port: int, args: argparse.Namespace) -> list[Figure]:
    raw = RawHttp(http_port, setup.api_token)
    conn = await asyncpg.connect(setup.dsn)
    cols = ", ".join(METRIC_COLUMNS)
    latest_sql = f"SELECT {cols} FROM vps_latest WHERE vps_id = $1"
    rnd = random.Random(11)
    cases = [("1h", "1m"), ("24h", "auto"), ("30d", "auto")]
    spans = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "30d": timedelta(days=30)}
    http: dict[str, list[float]] = {}
    sql: dict[str, list[float]] = {}

    def add(store: dict[str, list[float]], key: str, began: float) -> None:
        store.setdefault(key, []).append((time.perf_counter() - began) * 1000)

    try:
        for _ in range(args.repeats):
            for _ in range(args.query_requests):
                vps_id = rnd.choice(setup.history)
                began = time.perf_counter()
                status, _ = await raw.get("/api/health")
                add(http, "health", began)
                began = time.perf_counter()
                status, _ = await raw.get(f"/api/vps/{vps_id}/metrics/latest")
                add(http, "latest", began)
                if status != 200:
                    raise BenchError(f"/metrics/latest of VPS {vps_id}: HTTP {status}")
                began = time.perf_counter()
                await conn.fetchrow(latest_sql, vps_id)
                add(sql, "latest", began)
                for span, interval in cases:
                    key = f"{span}/{interval}"
                    end = datetime.now(UTC)
                    start = end - spans[span]
                    query = httpx.QueryParams(
                        start_time=start.isoformat(), end_time=end.isoformat(), interval=interval
                    )
                    began = time.perf_counter()
                    status, _ = await raw.get(f"/api/vps/{vps_id}/metrics/timeseries?{query}")
                    add(http, key, began)
                    if status != 200:
                        raise BenchError(f"timeseries {key} of VPS {vps_id}: HTTP {status}")
                    began = time.perf_counter()
                    await fetch_timeseries(conn, vps_id, plan_timeseries(interval, start, end))
                    add(sql, key, began)
    finally:
        await raw.close()
        await conn.close()
    size = f"{len(setup.history)} VPSes x {args.history_days} d"
    figures = [
        Figure("queries", "reference: GET /api/health round trip", "ms", http["health"], "-", []),
        Figure(
            "queries",
            "/metrics/latest round trip",
            "ms",
            http["latest"],
            "asyncpg SELECT vps_latest by id",
            sql["latest"],
        ),
    ]
    for span, interval in cases:
        key = f"{span}/{interval}"
        figures.append(
            Figure(
                "queries",
                f"/metrics/timeseries {span} interval={interval} round trip",
                "ms",
                http[key],
                "asyncpg fetch_timeseries()",
                sql[key],
                note=size if span == "1h" else "",
            )
        )
    for fig in figures[1:]:
        print(
            f"{fig.metric}: p50 {percentile(fig.values, 50):.2f} ms p99"
            f" {percentile(fig.values, 99):.2f} ms (SQL p50 {percentile(fig.baseline, 50):.2f})",
            flush=True,
        )
    return figures
