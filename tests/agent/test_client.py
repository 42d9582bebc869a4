"""AgentClient against a real grpc.aio server on a localhost socket.

The fake servicer below speaks the wire contract and lets each test decide
per batch whether to ack, hold the ack, or report a duplicate, push config,
and drop the stream, so the reconnect/re-send guarantees can be observed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import pytest

from agent.batcher import Batcher
from agent.client import AgentClient, Backoff
from agent.spool import SnapshotSpool
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc

TOKEN = "good-token"
Context = grpc.aio.ServicerContext[agent_pb2.MessageToServer, agent_pb2.MessageToAgent]


@dataclass
class StreamRecord:
    message_ids: list[int] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    heartbeats: int = 0
    drop: asyncio.Event = field(default_factory=asyncio.Event)
    outbox: asyncio.Queue[agent_pb2.MessageToAgent] = field(default_factory=asyncio.Queue)


class FakeServer(agent_pb2_grpc.AgentCommunicationServiceServicer):
    """Answers like the command side; ``policy(batch_id)`` says ack/hold/duplicate."""

    def __init__(self) -> None:
        self.streams: list[StreamRecord] = []
        self.handshakes: list[agent_pb2.AgentHandshake] = []
        self.acked: list[str] = []
        self.snapshot_counts: dict[str, int] = {}
        self.policy: Callable[[str], str] = lambda _batch_id: "ack"
        self.ack_delay_s = 0.0
        self.fail_handshakes = 0
        self.handshake_config = agent_pb2.AgentConfig()
        self.on_handshake: Callable[[], None] = lambda: None
        self.max_outstanding = 0

    @property
    def current(self) -> StreamRecord:
        return self.streams[-1]

    def received(self) -> list[str]:
        return [batch_id for stream in self.streams for batch_id in stream.batches]

    async def EstablishCommunicationStream(  # type: ignore[override]
        self, request_iterator: object, context: Context
    ) -> None:
        record = StreamRecord()
        first = await context.read()
        assert isinstance(first, agent_pb2.MessageToServer)
        assert first.WhichOneof("payload") == "agent_handshake"
        record.message_ids.append(first.client_message_id)
        self.handshakes.append(first.agent_handshake)
        self.on_handshake()
        if first.agent_handshake.agent_token != TOKEN:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked agent token")
        if self.fail_handshakes > 0:
            self.fail_handshakes -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        self.streams.append(record)
        ack = agent_pb2.ServerHandshakeAck(vps_id=7, config=self.handshake_config)
        await context.write(agent_pb2.MessageToAgent(server_message_id=1, handshake_ack=ack))
        writer = asyncio.create_task(self._write_loop(record, context))
        dropped = asyncio.create_task(record.drop.wait())
        acks: set[asyncio.Task[None]] = set()
        try:
            while True:
                read = asyncio.create_task(context.read())
                await asyncio.wait([read, dropped], return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    break
                message = read.result()
                if not isinstance(message, agent_pb2.MessageToServer):
                    return
                record.message_ids.append(message.client_message_id)
                if message.HasField("heartbeat"):
                    record.heartbeats += 1
                elif message.HasField("performance_batch"):
                    batch_id = message.performance_batch.batch_id
                    record.batches.append(batch_id)
                    self.snapshot_counts[batch_id] = len(message.performance_batch.snapshots)
                    outstanding = len(record.batches) - len(set(record.batches) & set(self.acked))
                    self.max_outstanding = max(self.max_outstanding, outstanding)
                    task = asyncio.create_task(self._ack(record, batch_id))
                    acks.add(task)
                    task.add_done_callback(acks.discard)
        finally:
            writer.cancel()
            dropped.cancel()
            for task in acks:
                task.cancel()
        await context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped by the test")

    async def _ack(self, record: StreamRecord, batch_id: str) -> None:
        decision = self.policy(batch_id)
        if decision == "hold":
            return
        if self.ack_delay_s:
            await asyncio.sleep(self.ack_delay_s)  # simulated commit latency
        self.acked.append(batch_id)
        ack = agent_pb2.BatchAck(batch_id=batch_id, duplicate=decision == "duplicate")
        if decision == "reject":
            ack.rejected, ack.error = 2, "timestamp too far in the future"
        record.outbox.put_nowait(agent_pb2.MessageToAgent(batch_ack=ack))

    async def _write_loop(self, record: StreamRecord, context: Context) -> None:
        server_message_id = 1
        while True:
            message = await record.outbox.get()
            server_message_id += 1
            message.server_message_id = server_message_id
            await context.write(message)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeServer, str]]:
    servicer = FakeServer()
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentCommunicationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def make_batch() -> agent_pb2.PerformanceSnapshotBatch:
    batch = agent_pb2.PerformanceSnapshotBatch(batch_id=str(uuid.uuid4()))
    batch.snapshots.add(timestamp_unix_ms=1_700_000_000_000, memory_total_bytes=1)
    return batch


@pytest.fixture
async def running() -> AsyncIterator[Callable[[AgentClient], None]]:
    """Starts clients as tasks and cancels them when the test ends."""
    tasks: list[asyncio.Task[None]] = []
    yield lambda client: tasks.append(asyncio.create_task(client.run()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def fast_client(address: str, spool: SnapshotSpool, **kwargs: object) -> AgentClient:
    options: dict[str, object] = {"backoff": Backoff(base=0.01, cap=0.05, rng=random.Random(1))}
    options.update(kwargs)
    return AgentClient(address, TOKEN, spool, **options)  # type: ignore[arg-type]


async def test_handshake_then_spooled_batches_oldest_first(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    spool = SnapshotSpool(tmp_path)
    batches = [make_batch() for _ in range(5)]
    for batch in batches:
        spool.add(batch)
    client = fast_client(address, spool)
    running(client)
    await eventually(lambda: len(spool) == 0)

    handshake = server.handshakes[0]
    assert handshake.agent_token == TOKEN
    assert handshake.hostname
    assert handshake.os
    assert handshake.agent_version
    assert handshake.boot_time_unix_ms > 1_000_000_000_000
    assert client.vps_id == 7
    assert client.connected
    assert server.received() == [b.batch_id for b in batches]
    assert server.current.message_ids == list(range(1, 7))  # handshake + 5 batches
    assert client.stats.batches_acked == 5


async def test_reconnect_resends_exactly_the_unacked_batches(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    spool = SnapshotSpool(tmp_path)
    batches = [make_batch() for _ in range(8)]
    for batch in batches:
        spool.add(batch)
    held = {batches[i].batch_id for i in (1, 4, 5)}
    duplicate = batches[2].batch_id
    server.policy = lambda b: "hold" if b in held else "duplicate" if b == duplicate else "ack"
    client = fast_client(address, spool)
    running(client)
    await eventually(lambda: len(server.acked) == 5)
    # The spool holds exactly the unacked batches, in order; any ack is final.
    assert spool.ids() == [b.batch_id for b in batches if b.batch_id in held]
    assert client.stats.duplicates == 1
    later = make_batch()  # produced while connected: spooled, then sent
    client.submit(later)
    await eventually(lambda: later.batch_id in server.acked)

    first_stream = server.current
    server.policy = lambda _b: "ack"
    first_stream.drop.set()
    await eventually(lambda: len(server.streams) == 2 and len(spool) == 0)
    resent = server.streams[1].batches
    assert resent == [b.batch_id for b in batches if b.batch_id in held]  # same ids, in order
    assert not set(resent) & (set(first_stream.batches) - held)
    assert sorted(server.acked) == sorted(b.batch_id for b in [*batches, later])
    # client_message_id restarts and increases per stream.
    assert server.streams[1].message_ids == list(range(1, len(resent) + 2))


async def test_pipelining_is_bounded_by_max_in_flight(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.ack_delay_s = 0.02
    spool = SnapshotSpool(tmp_path)
    for _ in range(30):
        spool.add(make_batch())
    running(fast_client(address, spool, max_in_flight=4))
    await eventually(lambda: len(spool) == 0)
    assert len(server.received()) == 30
    assert server.max_outstanding == 4


async def test_server_config_is_applied_live(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.handshake_config = agent_pb2.AgentConfig(metrics_collect_interval_seconds=5)
    batcher = Batcher(collect_interval_seconds=1, upload_interval_seconds=1, batch_max_size=60)
    client = fast_client(address, SnapshotSpool(tmp_path), on_config=batcher.apply_config)
    running(client)
    await eventually(lambda: batcher.collect_interval_seconds == 5)
    server.current.outbox.put_nowait(
        agent_pb2.MessageToAgent(
            agent_config=agent_pb2.AgentConfig(
                metrics_upload_batch_max_size=10, metrics_upload_interval_seconds=30
            )
        )
    )
    await eventually(lambda: batcher.batch_max_size == 10)
    assert (batcher.collect_interval_seconds, batcher.upload_interval_seconds) == (5, 30)


async def test_rejected_ack_is_final_and_logged(
    fake: tuple[FakeServer, str],
    running: Callable[[AgentClient], None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, address = fake
    server.policy = lambda _b: "reject"
    spool = SnapshotSpool(tmp_path)
    batch = make_batch()
    spool.add(batch)
    client = fast_client(address, spool)
    with caplog.at_level(logging.WARNING, logger="agent.client"):
        running(client)
        await eventually(lambda: len(spool) == 0)
    assert client.stats.snapshots_rejected == 2
    assert "rejected 2 snapshot(s)" in caplog.text
    assert "too far in the future" in caplog.text


async def test_heartbeat_when_idle(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    running(fast_client(address, SnapshotSpool(tmp_path), heartbeat_interval_s=0.05))
    await eventually(lambda: bool(server.streams) and server.current.heartbeats >= 2)


async def test_missing_ack_times_out_and_the_batch_is_resent(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.policy = lambda _b: "hold"  # e.g. the database is down: nothing commits
    spool = SnapshotSpool(tmp_path)
    batch = make_batch()
    spool.add(batch)
    client = fast_client(address, spool, ack_timeout_s=0.2)
    attempts: list[int] = []
    server.on_handshake = lambda: attempts.append(client.backoff.attempt)
    running(client)
    await eventually(lambda: len(server.streams) == 1 and len(server.received()) == 1)
    server.policy = lambda _b: "ack"
    await eventually(lambda: len(spool) == 0)
    # A stream that stored nothing does not count as a success for the backoff.
    assert attempts[:2] == [0, 1]
    assert server.received()[-1] == batch.batch_id
    assert len(server.streams) >= 2


async def test_backoff_grows_until_a_handshake_succeeds_then_resets(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.fail_handshakes = 4
    client = fast_client(address, SnapshotSpool(tmp_path))
    attempts: list[int] = []
    server.on_handshake = lambda: attempts.append(client.backoff.attempt)
    running(client)
    await eventually(lambda: client.connected)
    assert attempts == [0, 1, 2, 3, 4]
    assert client.backoff.attempt == 0


async def test_bad_token_logs_an_error_and_retries_at_the_maximum_backoff(
    fake: tuple[FakeServer, str],
    running: Callable[[AgentClient], None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, address = fake
    loop = asyncio.get_running_loop()
    times: list[float] = []
    server.on_handshake = lambda: times.append(loop.time())
    client = AgentClient(
        address, "revoked", SnapshotSpool(tmp_path), backoff=Backoff(base=0.001, cap=0.3)
    )
    with caplog.at_level(logging.ERROR, logger="agent.client"):
        running(client)
        await eventually(lambda: len(times) >= 3)
    assert "rejected the agent token" in caplog.text
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(times))
    assert not client.connected


def test_backoff_is_exponential_with_full_jitter_and_deterministic() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(42))
    reference = random.Random(42)
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert [backoff.ceiling(i) for i in range(9)] == ceilings
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [reference.uniform(0.0, c) for c in ceilings]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert backoff.attempt == 9
    assert backoff.ceiling(10_000) == 30.0  # no overflow after a long outage
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 0.5
