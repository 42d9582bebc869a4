"""`online` in GET /api/vps follows each VPS's own collect and upload intervals.

`vpsmon vps config --collect-interval` overrides the server's default for one
VPS; a VPS that samples hourly is not offline a minute after its last sample,
and one that samples every second is offline long before the default window
(three of the server's default intervals) has passed.
"""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import httpx

from command_side.vps_commands import configure_agent
from tests.support.command_side import deliver
from tests.support.query_side import query_side, seed
from tests.support.synthetic_agent import snapshot

MINUTE_MS = 60_000


async def test_online_uses_the_per_vps_collect_interval_override(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    tokens, vps, agent_tokens, _ = await seed(embedded_migrated_database)
    conn = await asyncpg.connect(embedded_migrated_database)
    try:
        # web-1 samples hourly: online for three hours after a sample.
        await configure_agent(conn, vps["web-1"], collect_interval_seconds=3600)
        # web-2 samples and uploads every second: offline after 15 s.
        await configure_agent(
            conn, vps["web-2"], collect_interval_seconds=1, upload_interval_seconds=1
        )
    finally:
        await conn.close()
    now_ms = time.time_ns() // 1_000_000
    last_sample_ms = {"web-1": now_ms - 60 * MINUTE_MS, "web-2": now_ms - MINUTE_MS}
    last_sample_ms["db-1"] = now_ms - MINUTE_MS  # no override: the default window
    for name, timestamp_ms in last_sample_ms.items():
        await deliver(embedded_migrated_database, agent_tokens[name], [snapshot(timestamp_ms)])

    # The server's default: a sample a minute, so offline after three minutes.
    env = {"VPSMON_AGENT_COLLECT_INTERVAL": "60", "VPSMON_AGENT_UPLOAD_INTERVAL": "60"}
    async with (
        query_side(
            embedded_migrated_database, tmp_path / "query-side.log", workers=1, env=env
        ) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {tokens['root']}"}, timeout=10
        ) as client,
    ):
        response = await client.get("/api/vps")
    assert response.status_code == 200, response.text
    online = {item["name"]: item["online"] for item in response.json()}
    assert online == {
        "web-1": True,  # an hour old, within its own three hours (not the default three minutes)
        "web-2": False,  # a minute old, past its own 15 s (though within the default)
        "db-1": True,  # a minute old, within the default three minutes
    }
