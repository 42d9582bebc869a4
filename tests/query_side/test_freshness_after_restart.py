"""After PostgreSQL restarts, the query side's cache reconnects and re-warms: live
values keep arriving within a second, on an SSE connection opened before the restart."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support.command_side import deliver
from tests.support.databases import create_database
from tests.support.processes import ClusterProcess
from tests.support.query_side import event_stream, query_side, seed
from tests.support.synthetic_agent import snapshot


async def send(dsn: str, agent_token: str, cpu: float) -> int:
    moment = time.time_ns() // 1_000_000
    await deliver(dsn, agent_token, [snapshot(moment, cpu=cpu)])
    return moment


@pytest.mark.e2e
async def test_live_values_survive_a_database_restart(tmp_path: Path) -> None:
    cluster = ClusterProcess(Path(tempfile.mkdtemp(prefix="vpsmon-qs-", dir="/tmp")) / "pg18")
    server_dsn = await cluster.start()
    try:
        dsn = await create_database(server_dsn)
        tokens, vps, agent_tokens, _ = await seed(dsn)
        headers = {"Authorization": f"Bearer {tokens['alice']}"}
        path = f"/api/vps/{vps['web-1']}/metrics"
        async with (
            query_side(dsn, tmp_path / "query-side.log") as base_url,
            httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client,
            event_stream(client, f"{path}/stream") as events,
        ):
            for cpu in (1.0, 2.0):
                if cpu == 2.0:
                    await cluster.stop()
                    assert await cluster.start() == server_dsn
                    await wait_until_live(base_url)
                await send(dsn, agent_tokens["web-1"], cpu)
                acked = time.monotonic()
                event = await events.next(timeout=5)
                while event["cpu_usage_percent"] != cpu:
                    event = await events.next(timeout=5)
                assert time.monotonic() - acked < 1.0
                for _ in range(6):
                    async with httpx.AsyncClient(base_url=base_url, headers=headers) as fresh:
                        latest = (await fresh.get(f"{path}/latest")).json()
                    assert latest["cpu_usage_percent"] == cpu
    finally:
        await cluster.stop()


async def wait_until_live(base_url: str) -> None:
    """Both workers' caches report live again (ten healthy answers in a row)."""
    healthy = 0
    deadline = time.monotonic() + 30
    while healthy < 10:
        assert time.monotonic() < deadline, "the query side did not recover"
        async with httpx.AsyncClient(base_url=base_url) as client:
            try:
                response = await client.get("/api/health")
                # "ok" needs the cache to be live (anonymous callers get only the status).
                ok = response.status_code == 200 and response.json()["status"] == "ok"
            except httpx.TransportError:
                ok = False
        healthy = healthy + 1 if ok else 0
        await asyncio.sleep(0.02)
