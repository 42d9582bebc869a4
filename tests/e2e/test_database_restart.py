"""PostgreSQL restarted under load: everything produced lands exactly once."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import asyncpg

from tests.databases import create_database
from tests.e2e.fleet import AgentProcess, SyntheticAgent, assert_exactly_once, register, wait_for
from tests.e2e.processes import CommandSideProcess
from tests.e2e.test_agent_ingest import committed_batches


class ClusterProcess:
    """The embedded cluster run by a process of its own.

    Starting PostgreSQL forks, and forking this test process while it runs
    gRPC clients can crash the child, so another process owns the cluster.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vpsmon.storage.embedded",
            str(self.data_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        return line.decode().strip()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            await asyncio.wait_for(self.process.wait(), 60)


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
            SyntheticAgent(side.address, v.token, tmp_path / f"load{i}")
            for i, v in enumerate(loader_vps)
        ]
        for loader in loaders:
            loader.start()

        async def under_load() -> bool:
            return await committed_batches(dsn) >= 30

        await wait_for(under_load, "ingest under load")
        await server.stop()
        assert not await _reachable(dsn)

        async def backlog() -> bool:
            return all(len(loader.spool) >= 5 for loader in loaders)

        await wait_for(backlog, "a backlog while PostgreSQL is down")
        assert await server.start() == server_dsn
        before = await committed_batches(dsn)

        async def resumed() -> bool:
            return await committed_batches(dsn) >= before + 30

        await wait_for(resumed, "ingest to resume after the restart")
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
