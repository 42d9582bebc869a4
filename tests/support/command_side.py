"""A real command side on a real socket, and a bare-bones agent connection to drive it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from command_side.server import serve
from proto.options import CLIENT_CHANNEL_OPTIONS
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from tests.support.processes import free_port, wait_for_port
from vpsmon.settings import Settings


@dataclass
class RunningCommandSide:
    address: str
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[None]


@asynccontextmanager
async def command_side(dsn: str, **overrides: Any) -> AsyncIterator[RunningCommandSide]:
    port = free_port()
    options: dict[str, Any] = {"backend": "postgresql", **overrides}
    settings = Settings(database_url=dsn, grpc_listen=f"127.0.0.1:{port}", **options)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        await wait_for_port(port)
        yield RunningCommandSide(f"127.0.0.1:{port}", settings, stop, task)
    finally:
        stop.set()
        await task


def snapshot(
    timestamp_ms: int | None = None,
    *,
    cpu: float = 12.5,
    used: int = 1 << 30,
    total: int = 4 << 30,
    interfaces: Sequence[tuple[str, int, int]] = (("eth0", 1000, 2000),),
) -> agent_pb2.PerformanceSnapshot:
    return agent_pb2.PerformanceSnapshot(
        timestamp_unix_ms=time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms,
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


def batch_message(
    snapshots: Sequence[agent_pb2.PerformanceSnapshot], batch_id: str | None = None
) -> agent_pb2.MessageToServer:
    return agent_pb2.MessageToServer(
        performance_batch=agent_pb2.PerformanceSnapshotBatch(
            batch_id=batch_id or str(uuid.uuid4()), snapshots=snapshots
        )
    )


def handshake_message(token: str) -> agent_pb2.MessageToServer:
    return agent_pb2.MessageToServer(
        agent_handshake=agent_pb2.AgentHandshake(
            agent_token=token, agent_version="test", hostname="test-host", os="Linux"
        )
    )


async def deliver(
    dsn: str, agent_token: str, snapshots: Sequence[agent_pb2.PerformanceSnapshot]
) -> None:
    """Send one batch through a real command side and check that all of it was stored."""
    async with command_side(dsn) as side:
        agent = AgentConnection(side.address)
        try:
            await agent.handshake(agent_token)
            ack = await agent.send_batch(snapshots)
            assert ack.accepted == len(snapshots), ack
        finally:
            await agent.close()


class AgentConnection:
    """One stream, driven message by message."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=CLIENT_CHANNEL_OPTIONS)
        stub = agent_pb2_grpc.AgentCommunicationServiceStub(self.channel)
        self.call = stub.EstablishCommunicationStream()

    async def send(self, message: agent_pb2.MessageToServer) -> None:
        await self.call.write(message)

    async def receive(self, timeout: float = 10.0) -> agent_pb2.MessageToAgent:
        message = await asyncio.wait_for(self.call.read(), timeout)
        assert isinstance(message, agent_pb2.MessageToAgent), f"stream ended: {message!r}"
        return message

    async def handshake(self, token: str) -> agent_pb2.ServerHandshakeAck:
        await self.send(handshake_message(token))
        reply = await self.receive()
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

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()
