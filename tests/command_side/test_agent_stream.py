"""The command side over a real socket: handshake, acks after commit, idempotency,
validation, and bad input that never disturbs a well-behaved agent."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from command_side.vps_commands import configure_agent, register_vps, rotate_agent_token
from proto.options import MAX_MESSAGE_BYTES
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from tests.support.command_side import RunningCommandSide, command_side
from tests.support.databases import login_role
from tests.support.synthetic_agent import SyntheticAgent, batch_message, handshake_message, snapshot
from vpsmon.constants import VPS_EVENTS_CHANNEL

MAX_BATCH = 50


@pytest.fixture
async def server(embedded_migrated_database: str) -> AsyncIterator[RunningCommandSide]:
    async with command_side(
        embedded_migrated_database, max_batch_snapshots=MAX_BATCH, agent_upload_batch_max=20
    ) as running:
        yield running


@pytest.fixture
async def db(server: RunningCommandSide) -> AsyncIterator[asyncpg.Connection]:
    assert server.settings.database_url is not None
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def connected(server: RunningCommandSide, token: str) -> SyntheticAgent:
    agent = SyntheticAgent(server.address)
    await agent.handshake(token)
    return agent


async def test_handshake_acks_with_vps_and_config(
    server: RunningCommandSide, db: asyncpg.Connection
) -> None:
    issued = await register_vps(db, "web-1")
    agent = SyntheticAgent(server.address)
    try:
        ack = await agent.handshake(issued.token)
        assert ack.vps_id == issued.vps_id
        assert ack.config.metrics_collect_interval_seconds == 1
        assert ack.config.metrics_upload_batch_max_size == 20
    finally:
        await agent.close()


async def test_batch_is_stored_once_and_acked_after_commit(
    server: RunningCommandSide, db: asyncpg.Connection
) -> None:
    issued = await register_vps(db, "web-1")
    agent = await connected(server, issued.token)
    try:
        now = time.time_ns() // 1_000_000
        snapshots = [
            snapshot(now - 2000, interfaces=[("eth0", 100, 200), ("eth1", 5, 7)]),
            snapshot(now - 1000),
        ]
        batch_id = str(uuid.uuid4())
        ack = await agent.send_batch(snapshots, batch_id)
        assert (ack.accepted, ack.rejected, ack.duplicate, ack.error) == (2, 0, False, "")
        # The ack means committed: the rows are visible to anyone now.
        rows = await db.fetch("SELECT * FROM performance_metrics ORDER BY time")
        assert [(r["vps_id"], r["network_rx_bps"], r["network_tx_bps"]) for r in rows] == [
            (issued.vps_id, 105, 207),
            (issued.vps_id, 1000, 2000),
        ]
        latest = await db.fetchrow("SELECT * FROM vps_latest WHERE vps_id = $1", issued.vps_id)
        assert latest is not None
        assert latest["time"] == rows[1]["time"]

        again = await agent.send_batch(snapshots, batch_id)
        assert (again.accepted, again.rejected, again.duplicate) == (0, 0, True)
        assert await db.fetchval("SELECT count(*) FROM performance_metrics") == 2
    finally:
        await agent.close()


async def test_invalid_snapshots_are_rejected_individually(
    server: RunningCommandSide, db: asyncpg.Connection
) -> None:
    issued = await register_vps(db, "web-1")
    agent = await connected(server, issued.token)
    try:
        now = time.time_ns() // 1_000_000
        bad = [
            snapshot(now, cpu=math.nan),
            snapshot(now, cpu=math.inf),
            snapshot(now, cpu=-1.0),
            snapshot(now, cpu=100.5),
            snapshot(now, used=5, total=4),
            snapshot(now, total=0, used=0),
            snapshot(now + 6 * 60 * 1000),
            snapshot(now - 15 * 86400 * 1000),
            snapshot(now, used=2**63, total=2**64 - 1),
            snapshot(now, interfaces=[("a", 2**63 - 1, 0), ("b", 2**63 - 1, 0)]),
        ]
        ack = await agent.send_batch([snapshot(now - 10), *bad, snapshot(now)])
        assert (ack.accepted, ack.rejected) == (2, len(bad))
        for reason in (
            "not finite",
            "outside 0..100",
            "exceeds memory_total_bytes",
            "memory_total_bytes is 0",
            "in the future",
            "older than raw retention",
            "value out of range",
            "network rate out of range",
        ):
            assert reason in ack.error
        assert await db.fetchval("SELECT count(*) FROM performance_metrics") == 2
        assert await db.fetchval("SELECT max(cpu_usage_percent) FROM performance_metrics") == 12.5
    finally:
        await agent.close()


async def test_oversize_batch_and_bad_batch_id_are_rejected_whole(
    server: RunningCommandSide, db: asyncpg.Connection
) -> None:
    issued = await register_vps(db, "web-1")
    agent = await connected(server, issued.token)
    try:
        ack = await agent.send_batch([snapshot() for _ in range(MAX_BATCH + 1)])
        assert (ack.accepted, ack.rejected) == (0, MAX_BATCH + 1)
        assert f"exceeds the maximum of {MAX_BATCH}" in ack.error
        ack = await agent.send_batch([snapshot()], batch_id="not-a-uuid")
        assert (ack.accepted, ack.rejected) == (0, 1)
        assert "not a UUID" in ack.error
        assert await db.fetchval("SELECT count(*) FROM performance_metrics") == 0
        ack = await agent.send_batch([snapshot()])
        assert ack.accepted == 1  # the stream is still usable
    finally:
        await agent.close()


async def test_wrong_token_and_no_handshake_end_the_stream(server: RunningCommandSide) -> None:
    agent = SyntheticAgent(server.address)
    try:
        await agent.send(handshake_message("vpsm_wrong"))
        assert await agent.status() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await agent.close()
    agent = SyntheticAgent(server.address)
    try:
        await agent.send(batch_message([snapshot()]))
        assert await agent.status() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        await agent.close()


async def test_rotating_the_token_closes_the_open_stream(
    server: RunningCommandSide, db: asyncpg.Connection
) -> None:
    issued = await register_vps(db, "web-1")
    agent = await connected(server, issued.token)
    try:
        assert (await agent.send_batch([snapshot()])).accepted == 1
        await rotate_agent_token(db, issued.vps_id)
        assert await agent.status() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await agent.close()
    stale = SyntheticAgent(server.address)
    try:
        await stale.send(handshake_message(issued.token))
        assert await stale.status() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await stale.close()


async def test_config_change_is_pushed_to_the_connected_agent(
    server: RunningCommandSide, db: asyncpg.Connection
) -> None:
    issued = await register_vps(db, "web-1")
    agent = await connected(server, issued.token)
    try:
        await configure_agent(
            db, issued.vps_id, collect_interval_seconds=7, upload_batch_max_size=10
        )
        pushed = await agent.receive()
        assert pushed.WhichOneof("payload") == "agent_config"
        assert pushed.agent_config.metrics_collect_interval_seconds == 7
        assert pushed.agent_config.metrics_upload_batch_max_size == 10
        assert pushed.agent_config.metrics_upload_interval_seconds == 1
    finally:
        await agent.close()


async def test_forged_vps_event_notifications_are_ignored(
    server: RunningCommandSide,
    db: asyncpg.Connection,
    embedded_migrated_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any SQL login can NOTIFY on the events channel: garbage and forged
    events neither close a stream nor knock the listener over."""
    issued = await register_vps(db, "web-1")
    agent = await connected(server, issued.token)
    async with login_role(embedded_migrated_database, "vpsmon_reader") as forger_dsn:
        forger = await asyncpg.connect(forger_dsn)
        try:
            for payload in [
                "garbage",
                json.dumps({"vps_id": issued.vps_id, "event_type": "decommissioned"}),
                "999999999",
                "1," * 3000,
                "",
            ]:
                await forger.execute("SELECT pg_notify($1, $2)", VPS_EVENTS_CHANNEL, payload)
            await configure_agent(db, issued.vps_id, collect_interval_seconds=9)
            pushed = await agent.receive()  # delivered after the forgeries
            assert pushed.agent_config.metrics_collect_interval_seconds == 9
            assert (await agent.send_batch([snapshot()])).accepted == 1
            assert "listener failed" not in caplog.text
        finally:
            await forger.close()
            await agent.close()


async def test_bad_input_never_disturbs_a_well_behaved_agent(
    server: RunningCommandSide, db: asyncpg.Connection
) -> None:
    good = await register_vps(db, "steady")
    other = await register_vps(db, "misbehaving")
    steady = await connected(server, good.token)
    start_ms = time.time_ns() // 1_000_000 - 60_000
    sent = 0
    finished = asyncio.Event()

    async def stream_steadily() -> None:
        nonlocal sent
        while not finished.is_set() or sent < 20:
            ack = await steady.send_batch([snapshot(start_ms + sent * 10)])
            assert (ack.accepted, ack.rejected) == (1, 0)
            sent += 1

    streaming = asyncio.create_task(stream_steadily())
    try:
        # Random bytes straight to the port.
        host, port = server.address.rsplit(":", 1)
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(bytes(range(256)) * 64)
        await writer.drain()
        writer.close()
        # An HTTP/2 preface followed by garbage.
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 4096)
        await writer.drain()
        writer.close()
        # Wrong token, no handshake, invalid values, oversize batch.
        for first in (handshake_message("vpsm_nope"), batch_message([snapshot()])):
            bad = SyntheticAgent(server.address)
            await bad.send(first)
            assert await bad.status() in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.FAILED_PRECONDITION,
            )
            await bad.close()
        misbehaving = await connected(server, other.token)
        ack = await misbehaving.send_batch([snapshot(cpu=math.nan)] * 3)
        assert ack.rejected == 3
        ack = await misbehaving.send_batch([snapshot()] * (MAX_BATCH + 5))
        assert ack.rejected == MAX_BATCH + 5
        await misbehaving.close()
        # A message over the size limit, from a client that allows sending it.
        huge = grpc.aio.insecure_channel(
            server.address, options=[("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES)]
        )
        call = agent_pb2_grpc.AgentCommunicationServiceStub(huge).EstablishCommunicationStream()
        await call.write(handshake_message(other.token))
        reply = await call.read()
        assert isinstance(reply, agent_pb2.MessageToAgent)
        assert reply.WhichOneof("payload") == "handshake_ack"
        name = "x" * (MAX_MESSAGE_BYTES + 1024)
        await call.write(batch_message([snapshot(interfaces=[(name, 1, 1)])]))
        assert await asyncio.wait_for(call.code(), 10) == grpc.StatusCode.RESOURCE_EXHAUSTED
        await huge.close()
    finally:
        finished.set()
        await streaming
        await steady.close()
    rows = await db.fetch(
        "SELECT time FROM performance_metrics WHERE vps_id = $1 ORDER BY time", good.vps_id
    )
    assert len(rows) == sent
    gaps = {(b["time"] - a["time"]).total_seconds() for a, b in itertools.pairwise(rows)}
    assert gaps == {0.01}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM performance_metrics WHERE vps_id = $1", other.vps_id
        )
        == 0
    )


async def test_a_stream_without_a_handshake_is_ended_and_the_waiting_ones_are_capped(
    embedded_migrated_database: str,
) -> None:
    async with command_side(
        embedded_migrated_database, grpc_handshake_timeout="3s", grpc_max_unauthenticated_streams=2
    ) as side:

        async def third_stream() -> grpc.StatusCode:
            third = SyntheticAgent(side.address)
            try:
                await third.send(handshake_message("not-a-token"))
                return await third.status()
            finally:
                await third.close()

        waiting = [SyntheticAgent(side.address) for _ in range(2)]
        for stream in waiting:  # open the stream (its headers go out), send nothing
            await stream.call.wait_for_connection()
        reads = [asyncio.ensure_future(stream.call.read()) for stream in waiting]
        try:
            deadline = time.monotonic() + 2.5
            while (code := await third_stream()) != grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert code == grpc.StatusCode.UNAUTHENTICATED
                assert time.monotonic() < deadline, "the two silent streams were never counted"
            codes = [await stream.status() for stream in waiting]
            assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 2
            assert await third_stream() == grpc.StatusCode.UNAUTHENTICATED  # room again
        finally:
            await asyncio.gather(*reads, return_exceptions=True)
            for stream in waiting:
                await stream.close()


async def test_a_greedy_agent_is_refused_with_a_retry_after_while_a_polite_one_is_served(
    embedded_migrated_database: str,
) -> None:
    async with command_side(
        embedded_migrated_database,
        max_batch_snapshots=50,
        agent_upload_batch_max=50,
        ingest_budget_headroom=2,
    ) as side:
        conn = await asyncpg.connect(embedded_migrated_database)
        try:
            greedy_vps = await register_vps(conn, "greedy")
            polite_vps = await register_vps(conn, "polite")
        finally:
            await conn.close()
        greedy = await connected(side, greedy_vps.token)
        polite = await connected(side, polite_vps.token)
        try:
            # 2 snapshots/s with a 60-snapshot burst: the second batch of 50 is refused.
            clock = time.time_ns() // 1_000_000 - 60_000
            assert (
                await greedy.send_batch([snapshot(clock + i) for i in range(50)])
            ).accepted == 50
            await greedy.send(batch_message([snapshot(clock + 100 + i) for i in range(50)]))
            for i in range(5):
                assert (await polite.send_batch([snapshot(clock + i)])).accepted == 1
            assert await greedy.status() == grpc.StatusCode.RESOURCE_EXHAUSTED
            details = await greedy.call.details()
            assert "over its ingest budget of 2 snapshots/s" in details
            assert "retry-after-s=" in details
        finally:
            await greedy.close()
            await polite.close()
        again = await connected(side, greedy_vps.token)  # a reconnect does not refill it
        try:
            await again.send(batch_message([snapshot(clock + 200 + i) for i in range(50)]))
            assert await again.status() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await again.close()
