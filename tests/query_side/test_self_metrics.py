"""A real query side with two workers: SSE clients and responses counted over both."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from tests.e2e.fleet import wait_for
from tests.query_side.harness import event_stream, query_side, seed
from vpsmon.self_metrics import MULTIPROCESS_DIR_ENV, workers_values


def merged(directory: Path, name: str, **labels: str) -> float:
    """What a scrape in any worker would report: the merge of every worker's values."""
    registry = CollectorRegistry()
    registry.register(workers_values(directory))
    return registry.get_sample_value(name, labels) or 0.0


async def test_an_sse_client_is_counted_while_connected_and_requests_by_route(
    embedded_database: str, tmp_path: Path
) -> None:
    tokens, vps, _, _ = await seed(embedded_database)
    directory = tmp_path / "self-metrics"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"left by an earlier run")
    env = {MULTIPROCESS_DIR_ENV: str(directory)}
    async with query_side(embedded_database, tmp_path / "query-side.log", env=env) as base_url:
        assert not (directory / "counter_4242.db").exists()  # emptied on start
        headers = {"Authorization": f"Bearer {tokens['alice']}"}
        for _ in range(6):  # a connection each, so both workers may answer
            async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
                assert (await client.get("/api/vps")).status_code == 200
        async with httpx.AsyncClient(base_url=base_url) as anonymous:
            assert (await anonymous.get("/api/vps")).status_code == 401
            assert (await anonymous.put("/api/health")).status_code == 405  # no such route
        requests = "vpsmon_http_requests_total"
        assert merged(directory, requests, route="/api/vps", status="200") == 6
        assert merged(directory, requests, route="/api/vps", status="401") == 1
        assert merged(directory, requests, route="unmatched", status="405") == 1

        async def clients(expected: float) -> bool:
            return merged(directory, "vpsmon_sse_clients") == expected

        assert await clients(0)

        async def caches_connected() -> bool:
            return merged(directory, "vpsmon_latest_cache_disconnected") == 0

        await wait_for(caches_connected, "both workers' caches to follow NOTIFY", timeout=10)
        path = f"/api/vps/{vps['web-1']}/metrics/stream"
        async with (
            httpx.AsyncClient(base_url=base_url, headers=headers) as client,
            event_stream(client, path),
        ):
            await wait_for(lambda: clients(1), "the SSE client to be counted", timeout=10)
        await wait_for(lambda: clients(0), "the SSE client to leave the count", timeout=10)
        assert (
            merged(directory, requests, route="/api/vps/<vps_id:int>/metrics/stream", status="200")
            == 1
        )
    # Each stopping worker took its live gauges out of the merge.
    assert list(directory.glob("counter_*.db"))
    assert not list(directory.glob("gauge_live*.db"))
