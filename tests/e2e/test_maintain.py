"""`vpsmon maintain` as real processes: two on one database elect one leader, which
refreshes the rollups; kill -9 it and the other takes over; SIGTERM ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from command_side.vps_commands import register_vps
from tests.e2e.processes import VpsmonProcess


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(1500):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def maintain_process(dsn: str, log: Path) -> VpsmonProcess:
    env = {
        "VPSMON_DATABASE_URL": dsn,
        "VPSMON_BACKEND": "postgresql",
        "VPSMON_ROLLUP_REFRESH_INTERVAL": "1s",
    }
    return VpsmonProcess(["maintain"], env, log)


async def refreshes_by_pid(conn: asyncpg.Connection) -> dict[int, int]:
    """Rollup refreshes per process id (a runner id is host:pid:random)."""
    rows = await conn.fetch(
        "SELECT runner, count(*) AS runs FROM maintenance_runs"
        " WHERE job = 'rollup-refresh' AND error IS NULL GROUP BY runner"
    )
    return {int(row["runner"].split(":")[1]): row["runs"] for row in rows}


async def test_two_maintain_processes_elect_one_and_fail_over(
    embedded_database: str, tmp_path: Path
) -> None:
    processes = [maintain_process(embedded_database, tmp_path / f"maintain{i}.log") for i in (0, 1)]
    for process in processes:
        await process.start()
    conn = await asyncpg.connect(embedded_database)
    try:

        async def migrated() -> bool:
            return bool(await conn.fetchval("SELECT to_regclass('maintenance_runs') IS NOT NULL"))

        await eventually(migrated, "`vpsmon maintain` migrated the database")
        vps_id = (await register_vps(conn, "web-1")).vps_id
        await conn.execute(
            "INSERT INTO performance_metrics VALUES (now() - interval '20 minutes', $1,"
            " 42, 1, 2, 3, 4, 5, 6)",
            vps_id,
        )

        async def materialized() -> bool:
            # A refresh put the row into the 1m table, as the leader's job.
            total = await conn.fetchval("SELECT sum(samples) FROM vpsmon_rollups.data_1m")
            return total == 1 and sum((await refreshes_by_pid(conn)).values()) >= 2

        await eventually(materialized, "a leader refreshes the rollups")
        by_pid = await refreshes_by_pid(conn)
        assert len(by_pid) == 1, by_pid
        (leader_pid,) = by_pid
        leader = next(p for p in processes if p.process and p.process.pid == leader_pid)
        follower = next(p for p in processes if p is not leader)
        assert follower.running

        await leader.kill()
        assert follower.process is not None
        follower_pid = follower.process.pid

        async def follower_refreshes() -> bool:
            return (await refreshes_by_pid(conn)).get(follower_pid, 0) >= 1

        await eventually(follower_refreshes, "the other process takes over")
        assert await follower.stop() == 0, follower.output()
    finally:
        await conn.close()
        for process in processes:
            if process.running:
                await process.kill()
