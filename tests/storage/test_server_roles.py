"""vpsmon_ingest and vpsmon_query: each server works as a login role in its group, and
each role is refused what its server never does. Real servers, real database, both
backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import httpx
import pytest

from command_side.maintenance import last_runs
from command_side.maintenance_jobs import maintenance_jobs, prune_ingested_batches
from command_side.vps_commands import configure_agent, register_vps, rotate_agent_token
from projections import postgres_rollups
from query_side.accounts import create_api_token, create_user
from tests.command_side.harness import AgentConnection, command_side, snapshot
from tests.databases import StorageServer
from tests.query_side.harness import query_side
from tests.storage.roles import login_role
from tests.storage.store import migrated_store
from vpsmon.metrics import METRIC_COLUMNS
from vpsmon.settings import Settings
from vpsmon.storage.backend import Backend

ROW = f"({', '.join(METRIC_COLUMNS)}) VALUES (now(), {{vps}}, 1, 1, 2, 3, 4, 5, 6)"


@dataclass(frozen=True)
class Deployment:
    owner_dsn: str
    backend: Backend
    vps_id: int
    agent_token: str


@pytest.fixture
async def deployment(storage_server: StorageServer, fresh_database: str) -> Deployment:
    """A database migrated by its owner, with one VPS."""
    settings = Settings(backend=storage_server.backend)
    async with migrated_store(fresh_database, storage_server.name, settings) as store:
        issued = await register_vps(store.conn, "web-1")
        return Deployment(fresh_database, store.backend, issued.vps_id, issued.token)


@pytest.fixture
async def ingest_dsn(deployment: Deployment) -> AsyncIterator[str]:
    async with login_role(deployment.owner_dsn, "vpsmon_ingest") as dsn:
        yield dsn


@pytest.fixture
async def query_dsn(deployment: Deployment) -> AsyncIterator[str]:
    async with login_role(deployment.owner_dsn, "vpsmon_query") as dsn:
        yield dsn


async def _count(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value: int = await conn.fetchval(sql, *args)
        return value
    finally:
        await conn.close()


async def _refused(dsn: str, statements: list[str]) -> list[str]:
    """The statements that were NOT refused with insufficient privilege."""
    allowed = []
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            try:
                await conn.execute(sql)
            except asyncpg.InsufficientPrivilegeError:
                continue
            allowed.append(sql)
    finally:
        await conn.close()
    return allowed


async def _next_config(agent: AgentConnection) -> int:
    while True:
        message = await agent.receive()
        if message.WhichOneof("payload") == "agent_config":
            return message.agent_config.metrics_collect_interval_seconds


async def test_command_side_runs_as_ingest_role(deployment: Deployment, ingest_dsn: str) -> None:
    vps, owner = deployment.vps_id, deployment.owner_dsn
    async with command_side(ingest_dsn) as side:
        agent = AgentConnection(side.address)
        try:
            await agent.handshake(deployment.agent_token)
            assert (await agent.send_batch([snapshot()])).accepted == 1
            conn = await asyncpg.connect(ingest_dsn)
            try:
                if deployment.backend is Backend.POSTGRESQL:
                    assert await postgres_rollups.refresh(conn, wait=True) is not None
                # A late row: the insert trigger logs it as the ingest role.
                late_ms = time.time_ns() // 1_000_000 - 30 * 60 * 1000
                assert (await agent.send_batch([snapshot(late_ms)])).accepted == 1
                if deployment.backend is Backend.POSTGRESQL:
                    assert await _count(owner, "SELECT count(*) FROM vpsmon_rollups.invalidations")
                    assert await postgres_rollups.refresh(conn, wait=True) is not None
                    await postgres_rollups.enforce_retention(conn)
                await prune_ingested_batches(conn)
            finally:
                await conn.close()
            # Config pushes (LISTEN, then vps_agent_config) and revocation (agent_tokens).
            owner_conn = await asyncpg.connect(owner)
            try:
                await configure_agent(owner_conn, vps, collect_interval_seconds=7)
                assert await _next_config(agent) == 7
                await rotate_agent_token(owner_conn, vps)
            finally:
                await owner_conn.close()
            assert await agent.status() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await agent.close()
        # Its maintenance runner ran every job as the ingest role, without an error.
        jobs = {job.name for job in maintenance_jobs(deployment.backend, side.settings)}
        for _ in range(500):
            done = await _count(owner, "SELECT count(DISTINCT job) FROM maintenance_runs")
            if done == len(jobs):
                break
            await asyncio.sleep(0.02)
        owner_conn = await asyncpg.connect(owner)
        try:
            runs = await last_runs(owner_conn)
        finally:
            await owner_conn.close()
        assert set(runs) == jobs
        assert [run.error for run in runs.values()] == [None] * len(jobs)
    assert (
        await _count(owner, "SELECT count(*) FROM performance_metrics WHERE vps_id = $1", vps) == 2
    )
    assert await _count(owner, "SELECT count(*) FROM vps_latest WHERE vps_id = $1", vps) == 1
    if deployment.backend is Backend.POSTGRESQL:
        assert await _count(owner, "SELECT sum(samples) FROM vpsmon_rollups.data_1m") == 1


async def test_query_side_runs_as_query_role(
    deployment: Deployment, query_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    owner = await asyncpg.connect(deployment.owner_dsn)
    try:
        alice = await create_user(owner, "alice", "alice-password")
        await owner.execute("UPDATE vps SET owner_id = $1", alice.id)
        token = await create_api_token(owner, "alice")
        for table in ("performance_metrics", "vps_latest"):
            await owner.execute(f"INSERT INTO {table} {ROW.format(vps=deployment.vps_id)}")
    finally:
        await owner.close()
    if deployment.backend is Backend.POSTGRESQL:
        conn = await asyncpg.connect(query_dsn)
        try:
            assert await postgres_rollups.refresh(conn, wait=True) is not None
        finally:
            await conn.close()
    log = tmp_path_factory.mktemp("query-role") / "query-side.log"
    env = {"VPSMON_BACKEND": deployment.backend.value}
    vps = f"/api/vps/{deployment.vps_id}"
    async with (
        query_side(query_dsn, log, workers=1, env=env) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        wrong = await client.post("/api/auth/login", json={"username": "alice", "password": "no"})
        assert wrong.status_code == 401, wrong.text
        login = await client.post(
            "/api/auth/login", json={"username": "alice", "password": "alice-password"}
        )
        assert login.status_code == 200, login.text
        assert [v["id"] for v in (await client.get("/api/vps")).json()] == [deployment.vps_id]
        assert (await client.get(f"{vps}/metrics/latest")).status_code == 200
        series = await client.get(f"{vps}/metrics/timeseries", params={"interval": "1m"})
        assert series.status_code == 200, series.text
        assert series.json()["points"]
        assert (await client.post("/api/auth/logout")).status_code == 204
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/vps", headers=bearer)).status_code == 200
    output = log.read_text()
    assert "permission denied" not in output, output
    assert await _count(
        deployment.owner_dsn, "SELECT count(*) FROM api_tokens WHERE last_used_at IS NOT NULL"
    )


ALWAYS_REFUSED = [
    "CREATE TABLE public.intruder (id int)",
    "CREATE TEMP TABLE intruder (id int)",
    "ALTER TABLE performance_metrics ADD COLUMN intruder int",
    "DROP TABLE vps_latest",
    "TRUNCATE performance_metrics",
    "UPDATE performance_metrics SET cpu_usage_percent = 0",
    "INSERT INTO vps_events (vps_id, event_type) VALUES (1, 'decommissioned')",
    "SELECT * FROM vps_events",
    "UPDATE vps SET name = 'x'",
    "DELETE FROM vps",
    "UPDATE agent_tokens SET revoked_at = now()",
    "DELETE FROM retention_policy",
    "DELETE FROM schema_migrations",
    "INSERT INTO users (username, password_hash, is_admin) VALUES ('mallory', 'x', true)",
    "UPDATE users SET is_admin = true",
]


async def test_ingest_role_is_refused(deployment: Deployment, ingest_dsn: str) -> None:
    refused = [
        *ALWAYS_REFUSED,
        "SELECT * FROM users",
        "SELECT * FROM sessions",
        "SELECT * FROM api_tokens",
        "SELECT * FROM login_failures",
        "UPDATE vps_agent_config SET collect_interval_seconds = 1",
    ]
    if deployment.backend is Backend.TIMESCALEDB:
        refused.append("DELETE FROM performance_metrics")  # retention is TimescaleDB's job
    assert await _refused(ingest_dsn, refused) == []


async def test_query_role_is_refused(deployment: Deployment, query_dsn: str) -> None:
    row = ROW.format(vps=deployment.vps_id)
    refused = [
        *ALWAYS_REFUSED,
        f"INSERT INTO performance_metrics {row}",
        "DELETE FROM performance_metrics",
        f"INSERT INTO vps_latest {row}",
        "UPDATE vps_latest SET cpu_usage_percent = 0",
        "SELECT * FROM agent_tokens",
        "SELECT * FROM ingested_batches",
        "DELETE FROM ingested_batches",
        "UPDATE api_tokens SET user_id = 1",
        "DELETE FROM users",
    ]
    assert await _refused(query_dsn, refused) == []
