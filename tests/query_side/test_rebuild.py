"""`vpsmon projections rebuild` recomputes every projection from the event logs:
damaged projections are repaired and every API response is what it was."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from projections import postgres_rollups
from tests.support.cli import run_cli
from tests.support.command_side import command_side
from tests.support.query_side import Fleet
from tests.support.synthetic_agent import SyntheticAgent, snapshot


async def ingest_history(fleet: Fleet) -> None:
    now = time.time_ns() // 1_000_000
    async with command_side(fleet.dsn) as side:
        for name, offset in (("web-1", 0), ("db-1", 3)):
            agent = SyntheticAgent(side.address)
            await agent.handshake(fleet.agent_tokens[name])
            history = [
                snapshot(now - 3 * 3_600_000 + i * 10_000 + offset, cpu=(i * 7 + offset) % 100)
                for i in range(3 * 360)
            ]
            for start in range(0, len(history), 500):
                ack = await agent.send_batch(history[start : start + 500])
                assert ack.accepted == len(history[start : start + 500])
            await agent.close()


async def api_snapshot(fleet: Fleet, end: datetime) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    async with fleet.client("root") as client:
        listing = (await client.get("/api/vps")).json()
        responses["/api/vps"] = [
            {k: v for k, v in item.items() if k != "online"} for item in listing
        ]
        for item in listing:
            base = f"/api/vps/{item['id']}/metrics"
            latest = await client.get(f"{base}/latest")
            responses[f"{base}/latest"] = (latest.status_code, latest.json())
            for interval, hours in (
                ("1m", 3),
                ("5m", 4),
                ("15m", 4),
                ("1h", 6),
                ("1d", 48),
                ("auto", 24),
            ):
                params = {
                    "interval": interval,
                    "start_time": (end - timedelta(hours=hours)).isoformat(),
                    "end_time": end.isoformat(),
                }
                response = await client.get(f"{base}/timeseries", params=params)
                assert response.status_code == 200, response.text
                responses[f"{base}/timeseries?{interval}"] = response.json()
    return responses


async def test_rebuild_repairs_projections_and_keeps_responses(fleet: Fleet) -> None:
    await ingest_history(fleet)
    conn = await asyncpg.connect(fleet.dsn)
    try:
        assert await postgres_rollups.refresh(conn, wait=True) is not None
        end = datetime.now(UTC)
        before = await api_snapshot(fleet, end)
        latest_before = await conn.fetch("SELECT * FROM vps_latest ORDER BY vps_id")
        tokens_before = await conn.fetch("SELECT * FROM agent_tokens ORDER BY token_sha256")
        assert any(len(v["points"]) > 10 for k, v in before.items() if "timeseries" in k)

        # Damage every projection.
        await conn.execute("UPDATE vpsmon_rollups.data_1m SET samples = samples + 1")
        await conn.execute("DELETE FROM vpsmon_rollups.data_5m")
        await conn.execute("UPDATE vpsmon_rollups.data_1h SET cpu_usage_percent_max = -1")
        await conn.execute("UPDATE vps SET name = 'renamed by accident'")
        await conn.execute("DELETE FROM vps_latest")
        await conn.execute("DELETE FROM agent_tokens")
        damaged = await api_snapshot(fleet, end)
        assert damaged != before
        code, out, err = await run_cli(fleet.dsn, "projections", "rebuild")
        assert code == 0, err
        assert "replayed" in out

        assert await api_snapshot(fleet, end) == before
        assert await conn.fetch("SELECT * FROM vps_latest ORDER BY vps_id") == latest_before
        assert await conn.fetch("SELECT * FROM agent_tokens ORDER BY token_sha256") == tokens_before
        assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == 2 * 3 * 360
    finally:
        await conn.close()
