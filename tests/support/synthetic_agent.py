"""The synthetic agent: what tests and benchmarks send to the command side in place
of a real agent.

- ``snapshot()`` and ``random_snapshot()`` make the measurements, ``batch_message()``
  and ``handshake_message()`` the wire messages around them.
- ``SyntheticAgent`` is one ``EstablishCommunicationStream`` over grpc.aio, driven
  message by message (tests that look at every reply), or pipelined after
  ``open()`` (benchmarks: many batches in flight, each ack matched to its batch
  by id and timed the moment it arrives).

The other agents of the suite reuse these parts rather than repeat them:
loadtests/locustfile.py sends the same messages over the synchronous gRPC API
(locust users are greenlets, not coroutines), and tests/support/fleet.py feeds
the same snapshots to the real AgentClient.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Sequence

import grpc

from proto.options import CLIENT_CHANNEL_OPTIONS
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc

# Load generators start their clocks a day back and send snapshots 1 ms apart
# per VPS (an agent replaying its spool): far inside raw retention, yet never
# in the future however long they run.
BACKLOG_MS = 24 * 3600 * 1000

AckFuture = asyncio.Future[tuple[float, agent_pb2.BatchAck]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def snapshot(
    timestamp_ms: int | None = None,
    *,
    cpu: float = 12.5,
    used: int = 1 << 30,
    total: int = 4 << 30,
    interfaces: Sequence[tuple[str, int, int]] = (("eth0", 1000, 2000),),
) -> agent_pb2.PerformanceSnapshot:
    """Fixed values (or the ones given), at ``timestamp_ms`` or now."""
    return agent_pb2.PerformanceSnapshot(
        timestamp_unix_ms=now_ms() if timestamp_ms is None else timestamp_ms,
        cpu_overall_usage_percent=cpu,
        memory_usage_bytes=used,
        memory_total_bytes=total,
        disk_total_io_read_bytes_per_sec=10,
        disk_total_io_write_bytes_per_sec=20,
        network_interfaces=[
            agent_pb2.NetworkInterfaceStats(
                interface_name=n, rx_bytes_per_sec=rx, tx_bytes_per_sec=tx
            )
            for n, rx, tx in interfaces
        ],
    )


def random_snapshot(rng: random.Random, timestamp_ms: int) -> agent_pb2.PerformanceSnapshot:
    """Plausible values drawn from ``rng``: a host under changing load."""
    total = 4 << 30
    return agent_pb2.PerformanceSnapshot(
        timestamp_unix_ms=timestamp_ms,
        cpu_overall_usage_percent=rng.uniform(0.0, 100.0),
        memory_usage_bytes=rng.randrange(total // 8, total),
        memory_total_bytes=total,
        disk_total_io_read_bytes_per_sec=rng.randrange(0, 50_000_000),
        disk_total_io_write_bytes_per_sec=rng.randrange(0, 50_000_000),
        network_interfaces=[
            agent_pb2.NetworkInterfaceStats(
                interface_name="eth0",
                rx_bytes_per_sec=rng.randrange(0, 100_000_000),
                tx_bytes_per_sec=rng.randrange(0, 100_000_000),
            )
        ],
    )


def batch_message(
    snapshots: Sequence[agent_pb2.PerformanceSnapshot], batch_id: str | None = None
) -> agent_pb2.MessageToServer:
    return agent_pb2.MessageToServer(
        performance_batch=agent_pb2.PerformanceSnapshotBatch(
            batch_id=batch_id or str(uuid.uuid4()), snapshots=snapshots
        )
    )


def handshake_message(
    token: str,
    *,
    agent_version: str = "test",
    hostname: str = "test-host",
    boot_time_unix_ms: int = 0,
) -> agent_pb2.MessageToServer:
    return agent_pb2.MessageToServer(
        agent_handshake=agent_pb2.AgentHandshake(
            agent_token=token,
            agent_version=agent_version,
            hostname=hostname,
            os="Linux",
            boot_time_unix_ms=boot_time_unix_ms,
        )
    )


class StreamEnded(AssertionError):
    """The command side ended the stream where the agent expected a reply."""


class SyntheticAgent:
    """One agent stream to the command side at ``address``.

    Message by message: ``send``/``receive``, ``handshake``, ``send_batch`` (waits
    for that batch's ack), ``acks_until_closed``, ``status``. Pipelined: ``open``
    (handshake, then a reader task), then ``submit`` as often as wanted; each
    returns a future of (``time.perf_counter()`` at the ack, the ack).
    """

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=CLIENT_CHANNEL_OPTIONS)
        stub = agent_pb2_grpc.AgentCommunicationServiceStub(self.channel)
        self.call = stub.EstablishCommunicationStream()
        self._waiting: dict[str, AckFuture] = {}
        self._reader: asyncio.Task[None] | None = None

    async def send(self, message: agent_pb2.MessageToServer) -> None:
        await self.call.write(message)

    async def receive(self, timeout: float = 10.0) -> agent_pb2.MessageToAgent:
        assert self._reader is None, "a pipelined stream's replies go to its ack futures"
        message = await asyncio.wait_for(self.call.read(), timeout)
        if not isinstance(message, agent_pb2.MessageToAgent):
            raise StreamEnded(f"stream ended: {message!r}")
        return message

    async def handshake(self, token: str, timeout: float = 10.0) -> agent_pb2.ServerHandshakeAck:
        await self.send(handshake_message(token))
        reply = await self.receive(timeout)
        assert reply.WhichOneof("payload") == "handshake_ack"
        return reply.handshake_ack

    async def send_batch(
        self, snapshots: Sequence[agent_pb2.PerformanceSnapshot], batch_id: str | None = None
    ) -> agent_pb2.BatchAck:
        message = batch_message(snapshots, batch_id)
        await self.send(message)
        while True:
            reply = await self.receive()
            if reply.WhichOneof("payload") == "batch_ack":
                assert reply.batch_ack.batch_id == message.performance_batch.batch_id
                return reply.batch_ack

    async def acks_until_closed(self, timeout: float = 10.0) -> list[agent_pb2.BatchAck]:
        """Every ack the server sends until it ends the stream."""
        acks = []
        with contextlib.suppress(grpc.aio.AioRpcError):  # the end of the stream
            while True:
                message = await asyncio.wait_for(self.call.read(), timeout)
                if not isinstance(message, agent_pb2.MessageToAgent):
                    break
                if message.WhichOneof("payload") == "batch_ack":
                    acks.append(message.batch_ack)
        return acks

    async def status(self, timeout: float = 10.0) -> grpc.StatusCode:
        """Wait for the server to end the stream; its status code."""
        return await asyncio.wait_for(self.call.code(), timeout)

    async def open(self, token: str, timeout: float = 30.0) -> agent_pb2.ServerHandshakeAck:
        """Handshake, then read in the background: from now on, ``submit``."""
        ack = await self.handshake(token, timeout)
        self._reader = asyncio.create_task(self._route_acks())
        return ack

    async def _route_acks(self) -> None:
        try:
            while True:
                reply = await self.call.read()
                if not isinstance(reply, agent_pb2.MessageToAgent):
                    break
                if reply.WhichOneof("payload") == "batch_ack":
                    future = self._waiting.pop(reply.batch_ack.batch_id, None)
                    if future is not None and not future.done():
                        future.set_result((time.perf_counter(), reply.batch_ack))
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(StreamEnded("stream ended before the ack"))

    async def submit(self, snapshots: Sequence[agent_pb2.PerformanceSnapshot]) -> AckFuture:
        """Send a batch without waiting for its ack (after ``open``)."""
        assert self._reader is not None, "open() the stream first"
        batch_id = str(uuid.uuid4())
        future: AckFuture = asyncio.get_running_loop().create_future()
        self._waiting[batch_id] = future
        try:
            await self.call.write(batch_message(snapshots, batch_id))
        except BaseException:
            self._waiting.pop(batch_id, None)
            if future.done():
                future.exception()  # the stream ended first; nobody will await it
            else:
                future.cancel()
            raise
        return future

    async def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self.call.done_writing()
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self.call.cancel()
        await self.channel.close()
