"""A real command side, in this process on a real socket, and a one-batch delivery to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from command_side.server import serve
from proto.vpsmon.v1 import agent_pb2
from tests.support.processes import free_port, wait_for_port
from tests.support.synthetic_agent import SyntheticAgent
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


async def deliver(
    dsn: str, agent_token: str, snapshots: Sequence[agent_pb2.PerformanceSnapshot]
) -> None:
    """Send one batch through a real command side and check that all of it was stored."""
    async with command_side(dsn) as side:
        agent = SyntheticAgent(side.address)
        try:
            await agent.handshake(agent_token)
            ack = await agent.send_batch(snapshots)
            assert ack.accepted == len(snapshots), ack
        finally:
            await agent.close()
