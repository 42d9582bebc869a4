"""Any SQL login can NOTIFY: forged and garbage payloads from a read-only user
change nothing the API serves and grow no memory."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil

from tests.support.databases import login_role
from tests.support.query_side import Fleet, query_side, seed
from tests.support.synthetic_agent import snapshot
from tests.support.waiting import eventually
from vpsmon.constants import LATEST_CHANNEL

# Distinct VPS ids that do not exist; one payload per slice.
FORGED_IDS = range(1_000_000, 1_120_000)


def _forged_row(vps_id: int, cpu: float) -> list[object]:
    """A row in the shape that earlier releases trusted: [time, vps_id, values...]."""
    moment = datetime.now(UTC) + timedelta(hours=1)
    return [moment.isoformat(), vps_id, cpu, 1, 2, 3, 4, 5, 6]


def _forged_payloads(real_ids: list[int]) -> list[str]:
    payloads = [json.dumps([_forged_row(vps_id, 99.9) for vps_id in real_ids])]
    for start in range(FORGED_IDS.start, FORGED_IDS.stop, 60):
        payloads.append(json.dumps([_forged_row(i, 1.0) for i in range(start, start + 60)]))
    for start in range(FORGED_IDS.start, FORGED_IDS.stop, 1000):
        payloads.append(",".join(str(i) for i in range(start, start + 1000)))
    payloads += [
        "",
        "garbage",
        "1,,2",
        "-1",
        "0",
        "1e9",
        "9" * 40,
        "[",
        '{"vps_id": 1}',
        "x" * 7000,
    ]
    return payloads


def _rss_bytes(port: int) -> int:
    """Resident memory of the query side's processes (found by their listen address)."""
    total = 0
    for process in psutil.process_iter(["environ", "memory_info"]):
        environ = process.info["environ"] or {}
        if environ.get("VPSMON_HTTP_LISTEN") == f"127.0.0.1:{port}":
            total += process.info["memory_info"].rss
    assert total > 0, "no query-side process found"
    return total


async def test_forged_notifications_change_nothing_and_cost_no_memory(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    tokens, vps, agent_tokens, passwords = await seed(embedded_migrated_database)
    async with (
        login_role(embedded_migrated_database, "vpsmon_reader") as forger_dsn,
        query_side(embedded_migrated_database, tmp_path / "qs.log", workers=1) as base_url,
    ):
        fleet = Fleet(embedded_migrated_database, base_url, tokens, vps, agent_tokens, passwords)
        port = int(base_url.rpartition(":")[2])
        web1 = f"/api/vps/{vps['web-1']}/metrics/latest"
        web2 = f"/api/vps/{vps['web-2']}/metrics/latest"

        async def shows(client: httpx.AsyncClient, moment_ms: int) -> bool:
            response = await client.get(web1)
            if response.status_code != 200:
                return False
            shown = datetime.fromisoformat(response.json()["time"].replace("Z", "+00:00"))
            return shown == datetime.fromtimestamp(moment_ms / 1000, UTC)

        async with fleet.client("alice") as client:
            first = time.time_ns() // 1_000_000
            await fleet.ingest("web-1", [snapshot(first, cpu=12.5)])
            await eventually(lambda: shows(client, first), "the first true value", timeout=60)
            memory_before = _rss_bytes(port)

            forger = await asyncpg.connect(forger_dsn)
            try:
                payloads = _forged_payloads(list(vps.values()))
                for start in range(0, len(payloads), 500):
                    async with forger.transaction():
                        await forger.executemany(
                            "SELECT pg_notify($1, $2)",
                            [(LATEST_CHANNEL, p) for p in payloads[start : start + 500]],
                        )
            finally:
                await forger.close()

            # Delivered after every forged notification (commit order): once it
            # shows, the cache has seen them all.
            sentinel = time.time_ns() // 1_000_000
            await fleet.ingest("web-1", [snapshot(sentinel, cpu=33.3)])
            await eventually(
                lambda: shows(client, sentinel), "the true value after the forgeries", timeout=60
            )

            latest = (await client.get(web1)).json()
            assert latest["cpu_usage_percent"] == 33.3
            assert (await client.get(web2)).status_code == 404  # forged rows never show
            growth = _rss_bytes(port) - memory_before
            assert growth < 30 * 2**20, f"query side grew by {growth / 2**20:.1f} MiB"
