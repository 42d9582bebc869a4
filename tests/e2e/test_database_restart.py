"""PostgreSQL restarted under load: everything produced lands exactly once."""

from __future__ import annotations

import tempfile
from pathlib import Path

import asyncpg

from tests.support.databases import create_database
from tests.support.fleet import (
    AgentProcess,
    SyntheticLoad,
    assert_exactly_once,
    committed_batches,
    register,
)
from tests.support.processes import ClusterProcess, CommandSideProcess
from tests.support.waiting import eventually


async def test_postgresql_restart_under_load(tmp_path: Path) -> None:
    # A cluster of its own: restarting the session's shared one would disturb other tests.
    server = ClusterProcess(Path(tempfile.mkdtemp(prefix="vpsmon-restart-", dir="/tmp")) / "pg18")
    server_dsn = await server.start()
    try:
        dsn = await create_database(server_dsn)
        real, *loader_vps = await register(dsn, 3)
        side = CommandSideProcess(dsn, tmp_path / "side.log")
        await side.start()
        agent = AgentProcess(side.address, real.token, tmp_path)
        await agent.start()
        loaders = [
            SyntheticLoad(side.address, v.token, tmp_path / f"load{i}")
            for i, v in enumerate(loader_vps)
        ]
        for loader in loaders:
            loader.start()

        async def under_load() -> bool:
            return await committed_batches(dsn) >= 30

        await eventually(under_load, "ingest under load", timeout=60)
        await server.stop()
        assert not await _reachable(dsn)

        async def backlog() -> bool:
            return all(len(loader.spool) >= 5 for loader in loaders)

        await eventually(backlog, "a backlog while PostgreSQL is down", timeout=60)
        assert await server.start() == server_dsn
        before = await committed_batches(dsn)

        async def resumed() -> bool:
            return await committed_batches(dsn) >= before + 30

        await eventually(resumed, "ingest to resume after the restart", timeout=60)
        for loader in loaders:
            await loader.drain_and_stop()
        assert await agent.stop() == 0
        assert await side.stop() == 0, side.output()
        await assert_exactly_once(
            dsn,
            {
                real.vps_id: agent.ledger(),
                **{v.vps_id: loader.ledger for v, loader in zip(loader_vps, loaders, strict=True)},
            },
        )
    finally:
        await server.stop()


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True
