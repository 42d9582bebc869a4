"""Two command-side processes on one database, agents spread over both, the same
batches sent to both: every snapshot is stored exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import grpc

from proto.vpsmon.v1 import agent_pb2
from tests.support.fleet import register
from tests.support.processes import CommandSideProcess
from tests.support.synthetic_agent import SyntheticAgent, batch_message, snapshot


async def test_a_reconnect_to_the_other_command_side_replaces_the_stream_and_stores_once(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    """Each agent sends a batch to one side, reconnects to the other while that
    batch may still be committing, and re-sends it there: the newer stream
    takes the VPS over (the older one ends ABORTED, after acking what it read),
    and every batch is stored exactly once."""
    tokens = [registered.token for registered in await register(embedded_migrated_database, 4)]
    sides = [
        CommandSideProcess(embedded_migrated_database, tmp_path / f"side{i}.log") for i in range(2)
    ]
    await asyncio.gather(*(side.start() for side in sides))
    base = time.time_ns() // 1_000_000 - 120_000
    produced = 0
    acks: list[agent_pb2.BatchAck] = []
    try:
        for round_ in range(10):
            resends = []
            replaced = []
            for index, token in enumerate(tokens):
                first, second = (SyntheticAgent(sides[(round_ + k) % 2].address) for k in (0, 1))
                batch_id = str(uuid.uuid4())
                snapshots = [snapshot(base + round_ * 100 + i + index) for i in range(0, 40, 4)]
                produced += len(snapshots)
                await first.handshake(token)
                await first.send(batch_message(snapshots, batch_id))
                await second.handshake(token)
                resends.append(second.send_batch(snapshots, batch_id))
                replaced.append(first)
            acks += await asyncio.gather(*resends)
            for first in replaced:
                acks += await first.acks_until_closed()
                assert await first.status() == grpc.StatusCode.ABORTED
                await first.close()
    finally:
        codes = await asyncio.gather(*(side.stop() for side in sides))
    assert codes == [0, 0], [side.output() for side in sides]

    # Each batch stored once: its other ack, if any, says duplicate.
    assert sum(ack.accepted for ack in acks if not ack.duplicate) == produced
    assert len({ack.batch_id for ack in acks if not ack.duplicate}) == 40
    conn = await asyncpg.connect(embedded_migrated_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == produced
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT DISTINCT vps_id, time FROM performance_metrics) d"
            )
            == produced
        )
        assert await conn.fetchval("SELECT count(*) FROM vps_latest") == len(tokens)
        assert await conn.fetchval("SELECT count(*) FROM ingested_batches") == 40
    finally:
        await conn.close()
