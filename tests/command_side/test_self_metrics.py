"""The command side's self-metrics count exactly what a real agent stream did."""

from __future__ import annotations

import math
import time
import uuid

import asyncpg
import grpc
import pytest

from command_side.vps_commands import register_vps
from proto.vpsmon.v1 import agent_pb2
from tests.command_side.harness import AgentConnection, batch_message, command_side, snapshot
from tests.e2e.fleet import wait_for
from vpsmon.self_metrics import REFUSED_OVER_BUDGET, REGISTRY
from vpsmon.settings import Settings
from vpsmon.storage.schema import upgrade_schema


def value(name: str, **labels: str) -> float:
    """A sample of the process's registry; a labelled one never incremented is 0."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reading() -> dict[str, float]:
    return {
        "rows": value("vpsmon_ingest_committed_rows_total"),
        "batches": value("vpsmon_ingest_committed_batches_total"),
        "duplicates": value("vpsmon_ingest_duplicate_batches_total"),
        "refused": value("vpsmon_ingest_refused_samples_total"),
        "invalid": value("vpsmon_ingest_invalid_snapshots_total"),
        "acks": value("vpsmon_agent_messages_sent_total", payload="batch_ack"),
        "streams": value("vpsmon_agent_streams"),
        "pending": value("vpsmon_ingest_pending_batches"),
    }


def changes(before: dict[str, float]) -> dict[str, float]:
    return {name: now - before[name] for name, now in reading().items()}


async def settled(before: dict[str, float], expected: dict[str, float]) -> None:
    """Wait until the changes since ``before`` are ``expected`` (acks count once written)."""

    async def reached() -> bool:
        return changes(before) == expected

    try:
        await wait_for(reached, "the self-metrics", timeout=10)
    except AssertionError:
        assert changes(before) == expected  # shows the difference
        raise


@pytest.fixture
async def agent_token(embedded_database: str) -> str:
    """The agent token of a VPS registered in the freshly migrated database."""
    conn = await asyncpg.connect(embedded_database)
    try:
        await upgrade_schema(conn, Settings(backend="postgresql"))
        return (await register_vps(conn, "web-1")).token
    finally:
        await conn.close()


async def test_rows_batches_acks_and_streams_of_a_real_stream(
    embedded_database: str, agent_token: str
) -> None:
    async with command_side(
        embedded_database, max_batch_snapshots=50, agent_upload_batch_max=20
    ) as side:
        before = reading()
        agent = AgentConnection(side.address)
        try:
            await agent.handshake(agent_token)
            await settled(before, {**dict.fromkeys(before, 0.0), "streams": 1})

            # Five batches written at once, so the writer may commit several per group.
            clock = time.time_ns() // 1_000_000 - 60_000
            sizes = [1, 7, 20, 3, 12]
            messages = []
            for number, size in enumerate(sizes):
                start = clock + 100 * number
                messages.append(batch_message([snapshot(start + i) for i in range(size)]))
            for message in messages:
                await agent.send(message)
            acks: list[agent_pb2.BatchAck] = []
            while len(acks) < len(messages):
                reply = await agent.receive()
                if reply.WhichOneof("payload") == "batch_ack":
                    acks.append(reply.batch_ack)
            assert sorted(ack.accepted for ack in acks) == sorted(sizes)
            stored = dict.fromkeys(before, 0.0)
            stored.update(rows=sum(sizes), batches=len(sizes), acks=len(sizes), streams=1)
            await settled(before, stored)

            # A re-send stores nothing; a repeated timestamp and an invalid snapshot are refused.
            first = messages[0].performance_batch
            assert (await agent.send_batch(first.snapshots, first.batch_id)).duplicate
            repeat = [snapshot(clock), snapshot(clock + 1)]
            assert (await agent.send_batch(repeat)).accepted == 1
            invalid = [snapshot(clock + 2, cpu=math.nan), snapshot(clock + 3)]
            assert (await agent.send_batch(invalid, str(uuid.uuid4()))).accepted == 1
            stored.update(rows=stored["rows"] + 2, batches=stored["batches"] + 2)
            stored.update(duplicates=1, refused=1, invalid=1, acks=stored["acks"] + 3)
            await settled(before, stored)
        finally:
            await agent.close()
        await settled(before, {**stored, "streams": 0})


async def test_a_stream_over_its_budget_is_counted(
    embedded_database: str, agent_token: str
) -> None:
    budget = {"max_batch_snapshots": 50, "agent_upload_batch_max": 50, "ingest_budget_headroom": 2}
    async with command_side(embedded_database, **budget) as side:
        refused = value("vpsmon_ingest_resource_exhausted_total", reason=REFUSED_OVER_BUDGET)
        greedy = AgentConnection(side.address)
        try:
            await greedy.handshake(agent_token)
            # 2 snapshots/s with a 60-snapshot burst: the second batch of 50 is refused.
            clock = time.time_ns() // 1_000_000 - 60_000
            assert (await greedy.send_batch([snapshot(clock + i) for i in range(50)])).accepted
            await greedy.send(batch_message([snapshot(clock + 100 + i) for i in range(50)]))
            assert await greedy.status() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await greedy.close()
        after = value("vpsmon_ingest_resource_exhausted_total", reason=REFUSED_OVER_BUDGET)
        assert after == refused + 1
