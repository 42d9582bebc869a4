"""A fake command side for the agent's tests: a real grpc.aio server on a localhost
socket that speaks the wire contract and lets each test decide, per batch, whether
to ack, hold the ack, or report a duplicate or rejection; push config; and drop the
stream, so that the agent's reconnect and re-send guarantees can be observed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
import grpc.aio

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


@asynccontextmanager
async def fake_command_side() -> AsyncIterator[tuple[FakeServer, str]]:
    """A FakeServer listening on 127.0.0.1, and its address."""
    servicer = FakeServer()
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentCommunicationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
