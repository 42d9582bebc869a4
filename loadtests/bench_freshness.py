"""Freshness phase of loadtests/benchmark.py: BatchAck -> visible in
/metrics/latest and on SSE, beside polling vps_latest directly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

import asyncpg
import httpx
from bench_common import HOST, BenchError, Figure, RawHttp, Setup, percentile
from bench_ingest import BenchAgentStream, snapshot


async def phase_freshness(
    setup: Setup, address: str, http_port: int, args: argparse.Namespace
) -> list[Figure]:
    vps_id, token = setup.fresh
    base = f"http://{HOST}:{http_port}"
    headers = {"Authorization": f"Bearer {setup.api_token}"}
    http_ms: list[float] = []
    sse_ms: list[float] = []
    sql_ms: list[float] = []
    poll = args.poll_ms / 1000
    stream = BenchAgentStream(address, token)
    await stream.open()
    conn = await asyncpg.connect(setup.dsn)
    raw = RawHttp(http_port, setup.api_token)
    try:
        async with (
            httpx.AsyncClient(base_url=base, headers=headers) as client,
            client.stream(
                "GET", f"/api/vps/{vps_id}/metrics/stream", timeout=httpx.Timeout(10, read=120)
            ) as response,
        ):
            if response.status_code != 200:
                raise BenchError(f"SSE stream: HTTP {response.status_code}")
            lines = response.aiter_lines()
            ids: asyncio.Queue[tuple[float, int]] = asyncio.Queue()

            async def read_sse() -> None:
                async for line in lines:
                    if line.startswith("id:"):
                        ids.put_nowait((time.perf_counter(), int(line[3:].strip())))

            sse_task = asyncio.create_task(read_sse())
            try:
                total = args.repeats * args.freshness_samples
                for _ in range(total):
                    ts = int(time.time() * 1000)
                    future = await stream.send([snapshot(ts)])
                    acked, _ack = await asyncio.wait_for(future, 30)
                    expected = datetime.fromtimestamp(ts / 1000, UTC)

                    async def http_seen(expected: datetime = expected) -> float:
                        while True:
                            status, body = await raw.get(f"/api/vps/{vps_id}/metrics/latest")
                            if status == 200:
                                got = datetime.fromisoformat(json.loads(body)["time"])
                                if got >= expected:
                                    return time.perf_counter()
                            await asyncio.sleep(poll)

                    async def sql_seen(expected: datetime = expected) -> float:
                        while True:
                            got = await conn.fetchval(
                                "SELECT time FROM vps_latest WHERE vps_id = $1", vps_id
                            )
                            if got is not None and got >= expected:
                                return time.perf_counter()
                            await asyncio.sleep(poll)

                    async def sse_seen(ts: int = ts) -> float:
                        while True:
                            seen, event_id = await ids.get()
                            if event_id >= ts:
                                return seen

                    got_http, got_sql, got_sse = await asyncio.wait_for(
                        asyncio.gather(http_seen(), sql_seen(), sse_seen()), 10
                    )
                    http_ms.append((got_http - acked) * 1000)
                    sql_ms.append((got_sql - acked) * 1000)
                    sse_ms.append((got_sse - acked) * 1000)
                    await asyncio.sleep(args.freshness_gap_ms / 1000)
            finally:
                sse_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sse_task
    except TimeoutError:
        raise BenchError("freshness: a snapshot did not appear within 10 s") from None
    finally:
        await raw.close()
        await conn.close()
        await stream.close()
    print(
        f"freshness: /latest p50 {percentile(http_ms, 50):.1f} ms, SSE p50"
        f" {percentile(sse_ms, 50):.1f} ms, vps_latest p50 {percentile(sql_ms, 50):.1f} ms",
        flush=True,
    )
    note = f"poll every {args.poll_ms:g} ms, idle server; < 0: seen before the ack"
    return [
        Figure(
            "freshness",
            "ack -> /metrics/latest",
            "ms",
            http_ms,
            "SELECT vps_latest poll",
            sql_ms,
            note=note,
        ),
        Figure("freshness", "ack -> SSE event", "ms", sse_ms, "SELECT vps_latest poll", sql_ms),
    ]
