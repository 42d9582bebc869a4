"""SIGTERM: the command side stops taking batches, acks everything it committed, exits 0."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import grpc

from proto.vpsmon.v1 import agent_pb2
from tests.command_side.harness import AgentConnection, batch_message, snapshot
from tests.e2e.fleet import register
from tests.e2e.processes import CommandSideProcess


async def test_sigterm_acks_every_committed_batch_then_ends_streams(
    embedded_database: str, tmp_path: Path
) -> None:
    token = (await register(embedded_database, 1))[0].token
    side = CommandSideProcess(embedded_database, tmp_path / "side.log")
    await side.start()
    agent = AgentConnection(side.address)
    await agent.handshake(token)
    base = time.time_ns() // 1_000_000 - 60_000
    sent = [str(uuid.uuid4()) for _ in range(200)]
    for index, batch_id in enumerate(sent):
        snapshots = [snapshot(base + index * 50 + i) for i in range(50)]
        await agent.send(batch_message(snapshots, batch_id))
    # Stop while batches are in flight: once the first is acked, the rest are
    # still queued or being committed (a signal before any read proves nothing).
    acked: set[str] = set()
    while not acked:
        message = await asyncio.wait_for(agent.call.read(), 30)
        assert isinstance(message, agent_pb2.MessageToAgent)
        if message.WhichOneof("payload") == "batch_ack":
            assert message.batch_ack.accepted == 50
            acked.add(message.batch_ack.batch_id)
    side.terminate()

    while True:
        try:
            message = await asyncio.wait_for(agent.call.read(), 30)
        except grpc.aio.AioRpcError:
            break
        if not isinstance(message, agent_pb2.MessageToAgent):
            break
        if message.WhichOneof("payload") == "batch_ack":
            assert message.batch_ack.accepted == 50
            acked.add(message.batch_ack.batch_id)
    assert await agent.status() == grpc.StatusCode.UNAVAILABLE
    await agent.close()
    assert await side.wait() == 0, side.output()

    conn = await asyncpg.connect(embedded_database)
    try:
        committed = {
            str(r["batch_id"]) for r in await conn.fetch("SELECT batch_id FROM ingested_batches")
        }
        rows = await conn.fetchval("SELECT count(*) FROM performance_metrics")
    finally:
        await conn.close()
    # Nothing committed went unacked, and everything acked is stored.
    assert committed == acked
    assert rows == 50 * len(acked)
    assert acked <= set(sent)
