"""One sample per VPS and timestamp: the first is stored, every repeat is
rejected in its ack, across batches and across command sides, on every backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from command_side.vps_commands import IssuedToken, register_vps
from proto.vpsmon.v1 import agent_pb2
from tests.support.command_side import RunningCommandSide, command_side
from tests.support.databases import StorageServer
from tests.support.synthetic_agent import SyntheticAgent, snapshot


@pytest.fixture
async def sides(
    storage_server: StorageServer, migrated_database: str
) -> AsyncIterator[tuple[RunningCommandSide, RunningCommandSide]]:
    """Two command sides on one migrated database (started one after the other)."""
    backend = storage_server.backend
    async with (
        command_side(migrated_database, backend=backend) as first,
        command_side(migrated_database, backend=backend) as second,
    ):
        yield first, second


async def registered(side: RunningCommandSide) -> tuple[str, IssuedToken]:
    """The sides' database and a VPS registered in it."""
    dsn = side.settings.database_url
    assert dsn is not None
    conn = await asyncpg.connect(dsn)
    try:
        return dsn, await register_vps(conn, "web-1")
    finally:
        await conn.close()


async def send(
    side: RunningCommandSide,
    token: str,
    snapshots: list[agent_pb2.PerformanceSnapshot],
    batch_id: str | None = None,
) -> agent_pb2.BatchAck:
    """One batch on a stream of its own (an agent that reconnected elsewhere)."""
    agent = SyntheticAgent(side.address)
    try:
        await agent.handshake(token)
        return await agent.send_batch(snapshots, batch_id)
    finally:
        await agent.close()


async def stored(dsn: str, vps_id: int) -> dict[int, float]:
    """cpu per stored timestamp (ms) of one VPS; fails if a timestamp is stored twice."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT (extract(epoch FROM time) * 1000)::bigint AS ms, cpu_usage_percent"
            " FROM performance_metrics WHERE vps_id = $1",
            vps_id,
        )
    finally:
        await conn.close()
    by_time = {r["ms"]: r["cpu_usage_percent"] for r in rows}
    assert len(by_time) == len(rows), "a timestamp is stored twice"
    return by_time


async def test_repeats_across_two_command_sides_are_stored_once_and_rejected(
    sides: tuple[RunningCommandSide, RunningCommandSide],
) -> None:
    first, second = sides
    dsn, issued = await registered(first)
    base = time.time_ns() // 1_000_000 - 60_000
    times = [base + 1000 * i for i in range(10)]

    one = await send(first, issued.token, [snapshot(t, cpu=1.0) for t in times])
    other_id = str(uuid.uuid4())
    other = await send(second, issued.token, [snapshot(t, cpu=2.0) for t in times], other_id)

    assert (one.accepted, one.rejected, one.error) == (10, 0, "")
    assert (other.accepted, other.rejected) == (0, 10)
    assert other.error == "timestamp already stored (10)"
    assert await stored(dsn, issued.vps_id) == dict.fromkeys(times, 1.0)
    # The batch id still counts once: a re-send is a duplicate, not a second rejection.
    again = await send(first, issued.token, [snapshot(t, cpu=2.0) for t in times], other_id)
    assert (again.duplicate, again.accepted) == (True, 0)

    conn = await asyncpg.connect(dsn)
    try:
        ledger = await conn.fetch(
            "SELECT accepted, rejected FROM ingested_batches ORDER BY committed_at"
        )
        assert [tuple(r) for r in ledger] == [(10, 0), (0, 10)]
        # Rollups count stored samples only.
        samples = await conn.fetchval(
            "SELECT sum(samples) FROM performance_metrics_1m WHERE vps_id = $1", issued.vps_id
        )
        assert samples == 10
    finally:
        await conn.close()


async def test_a_batch_of_new_and_stored_timestamps_stores_exactly_the_new_ones(
    sides: tuple[RunningCommandSide, RunningCommandSide],
) -> None:
    first, second = sides
    dsn, issued = await registered(first)
    base = time.time_ns() // 1_000_000 - 60_000
    old = [base + 1000 * i for i in range(6)]
    mixed = [base + 1000 * i for i in range(3, 12)]  # 3 stored, 6 new, the newest last

    one = await send(first, issued.token, [snapshot(t, cpu=1.0) for t in old])
    other = await send(second, issued.token, [snapshot(t, cpu=2.0) for t in mixed])

    assert (one.accepted, one.rejected) == (6, 0)
    assert (other.accepted, other.rejected, other.duplicate) == (6, 3, False)
    assert other.error == "timestamp already stored (3)"
    expected = dict.fromkeys(old, 1.0) | dict.fromkeys(mixed[3:], 2.0)
    assert await stored(dsn, issued.vps_id) == expected
    conn = await asyncpg.connect(dsn)
    try:
        latest = await conn.fetchrow(
            "SELECT (extract(epoch FROM time) * 1000)::bigint AS ms, cpu_usage_percent"
            " FROM vps_latest WHERE vps_id = $1",
            issued.vps_id,
        )
        assert latest is not None
        assert (latest["ms"], latest["cpu_usage_percent"]) == (mixed[-1], 2.0)
        accepted = await conn.fetchval("SELECT sum(accepted) FROM ingested_batches")
        assert accepted == len(expected)
    finally:
        await conn.close()


async def test_a_timestamp_repeated_within_a_batch_is_stored_once(
    sides: tuple[RunningCommandSide, RunningCommandSide],
) -> None:
    first, _ = sides
    dsn, issued = await registered(first)
    t0, t1, t2 = (time.time_ns() // 1_000_000 - 10_000 + 1000 * i for i in range(3))
    snapshots = [
        snapshot(t0, cpu=1.0),
        snapshot(t1, cpu=2.0),
        snapshot(t0, cpu=3.0),
        snapshot(t2, cpu=4.0),
        snapshot(t1, cpu=5.0),
        snapshot(t2, cpu=101.0),  # invalid: counted for its own reason only
    ]

    ack = await send(first, issued.token, snapshots)

    assert (ack.accepted, ack.rejected) == (3, 3)
    assert ack.error == (
        "cpu_overall_usage_percent outside 0..100 (1); timestamp repeated within the batch (2)"
    )
    assert await stored(dsn, issued.vps_id) == {t0: 1.0, t1: 2.0, t2: 4.0}
