"""Two command-side processes on one database, agents spread over both, the same
batches sent to both: every snapshot is stored exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg

from tests.command_side.harness import AgentConnection, snapshot
from tests.e2e.fleet import register
from tests.e2e.processes import CommandSideProcess


async def test_duplicated_batches_across_two_command_sides_land_once(
    embedded_database: str, tmp_path: Path
) -> None:
    tokens = [registered.token for registered in await register(embedded_database, 4)]
    sides = [CommandSideProcess(embedded_database, tmp_path / f"side{i}.log") for i in range(2)]
    await asyncio.gather(*(side.start() for side in sides))
    try:
        # Every agent talks to both sides at once and sends each batch to both.
        connections = []
        for token in tokens:
            pair = [AgentConnection(side.address) for side in sides]
            for agent in pair:
                await agent.handshake(token)
            connections.append(pair)
        base = time.time_ns() // 1_000_000 - 120_000
        produced = 0
        acks = []
        for round_ in range(25):
            sends = []
            for index, pair in enumerate(connections):
                batch_id = str(uuid.uuid4())
                snapshots = [snapshot(base + round_ * 100 + i + index) for i in range(0, 40, 4)]
                produced += len(snapshots)
                sends += [agent.send_batch(snapshots, batch_id) for agent in pair]
            acks += await asyncio.gather(*sends)
        for pair in connections:
            for agent in pair:
                await agent.close()
    finally:
        codes = await asyncio.gather(*(side.stop() for side in sides))
    assert codes == [0, 0], [side.output() for side in sides]

    # Each batch: one side stored it, the other acked it as a duplicate.
    assert sum(ack.accepted for ack in acks) == produced
    assert sum(1 for ack in acks if ack.duplicate) == len(acks) // 2
    conn = await asyncpg.connect(embedded_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == produced
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT DISTINCT vps_id, time FROM performance_metrics) d"
            )
            == produced
        )
        assert await conn.fetchval("SELECT count(*) FROM vps_latest") == len(tokens)
    finally:
        await conn.close()
