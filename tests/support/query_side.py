"""A real query side (subprocess, two workers) over a migrated database with users,
VPSes and tokens; and helpers to read its Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from command_side.vps_commands import register_vps
from proto.vpsmon.v1 import agent_pb2
from query_side.accounts import create_api_token, create_user
from tests.support.command_side import deliver
from tests.support.processes import VpsmonProcess, free_port, query_side_ready
from vpsmon.settings import Settings
from vpsmon.storage.schema import upgrade_schema


@dataclass
class Fleet:
    """alice owns web-1 and web-2, bob owns db-1, root is an admin."""

    dsn: str
    base_url: str
    tokens: dict[str, str]  # username -> API token
    vps: dict[str, int]  # name -> id
    agent_tokens: dict[str, str]  # VPS name -> agent token
    passwords: dict[str, str]

    async def ingest(
        self, vps_name: str, snapshots: Sequence[agent_pb2.PerformanceSnapshot]
    ) -> None:
        """Store snapshots for a VPS through a real command side."""
        await deliver(self.dsn, self.agent_tokens[vps_name], snapshots)

    def client(self, user: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)


async def seed(dsn: str) -> tuple[dict[str, str], dict[str, int], dict[str, str], dict[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        await upgrade_schema(conn, Settings(backend="postgresql"))
        passwords = {"alice": "alice-password", "bob": "bob-password", "root": "root-password"}
        users = {
            name: await create_user(conn, name, password, admin=name == "root")
            for name, password in passwords.items()
        }
        tokens = {name: await create_api_token(conn, name) for name in users}
        owners = {"web-1": "alice", "web-2": "alice", "db-1": "bob"}
        vps: dict[str, int] = {}
        agent_tokens: dict[str, str] = {}
        for name, owner in owners.items():
            issued = await register_vps(conn, name, owner_id=users[owner].id)
            vps[name] = issued.vps_id
            agent_tokens[name] = issued.token
        return tokens, vps, agent_tokens, passwords
    finally:
        await conn.close()


@asynccontextmanager
async def query_side(
    dsn: str, log: Path, workers: int = 2, env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    port = free_port()
    process = VpsmonProcess(
        ["query-side", "--workers", str(workers)],
        {
            "VPSMON_DATABASE_URL": dsn,
            "VPSMON_BACKEND": "postgresql",
            "VPSMON_HTTP_LISTEN": f"127.0.0.1:{port}",
            **(env or {}),
        },
        log,
    )
    await process.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
            for _ in range(600):
                if await query_side_ready(client, process.output(), workers):
                    break
                if not process.running:
                    raise AssertionError(f"query side exited:\n{process.output()}")
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"query side did not become healthy:\n{process.output()}")
        yield base_url
    finally:
        if process.running:
            await process.stop()


class EventStream:
    """An open SSE connection; `next()` returns the data of the next event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            data: list[str] = []
            async for line in self._lines:
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    parsed: dict[str, Any] = json.loads("\n".join(data))
                    return parsed
            raise AssertionError("the event stream ended")

        return await asyncio.wait_for(read(), timeout)

    async def end(self, timeout: float) -> None:
        """Wait until the server ends the stream (events before the end are skipped)."""

        async def drain() -> None:
            async for _ in self._lines:
                pass

        await asyncio.wait_for(drain(), timeout)


@asynccontextmanager
async def event_stream(client: httpx.AsyncClient, path: str) -> AsyncIterator[EventStream]:
    async with client.stream("GET", path, timeout=httpx.Timeout(10, read=60)) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)
