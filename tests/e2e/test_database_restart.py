"""PostgreSQL restarted under load: everything produced lands exactly once."""

from __future__ import annotations

import tempfile
from pathlib import Path

import asyncpg

from tests.support.databases import create_database
from tests.support.fleet import IngestFleet, committed_batches
from tests.support.processes import ClusterProcess
from tests.support.waiting import eventually


async def test_postgresql_restart_under_load(tmp_path: Path) -> None:
    # A cluster of its own: restarting the session's shared one would disturb other tests.
    server = ClusterProcess(Path(tempfile.mkdtemp(prefix="vpsmon-restart-", dir="/tmp")) / "pg18")
    server_dsn = await server.start()
    try:
        dsn = await create_database(server_dsn)
        fleet = await IngestFleet.start(dsn, tmp_path)

        async def under_load() -> bool:
            return await committed_batches(dsn) >= 30

        await eventually(under_load, "ingest under load", timeout=60)
        await server.stop()
        assert not await _reachable(dsn)

        async def backlog() -> bool:
            return all(len(load.spool) >= 5 for load in fleet.loads.values())

        await eventually(backlog, "a backlog while PostgreSQL is down", timeout=60)
        assert await server.start() == server_dsn
        before = await committed_batches(dsn)

        async def resumed() -> bool:
            return await committed_batches(dsn) >= before + 30

        await eventually(resumed, "ingest to resume after the restart", timeout=60)
        await fleet.stop_and_assert_exactly_once()
    finally:
        await server.stop()


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True
