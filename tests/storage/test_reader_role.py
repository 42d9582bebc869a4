"""vpsmon_reader may read measurements, rollups and the VPS list, and nothing else."""

from __future__ import annotations

import asyncpg
import pytest

from command_side.vps_commands import register_vps
from tests.support.rollups import VIEWS, Store


@pytest.fixture
async def reader(store: Store) -> Store:
    vps_id = (await register_vps(store.conn, "db-1")).vps_id
    await store.conn.execute(
        "INSERT INTO performance_metrics VALUES (now(), $1, 12.5, 1, 2, 3, 4, 5, 6)", vps_id
    )
    await store.conn.execute("SET ROLE vpsmon_reader")
    return store


@pytest.mark.parametrize("relation", ["vps", "vps_latest", "performance_metrics", *VIEWS])
async def test_reader_can_select(reader: Store, relation: str) -> None:
    rows = await reader.conn.fetch(f"SELECT * FROM {relation}")
    if relation != "vps_latest":
        assert len(rows) == 1


@pytest.mark.parametrize(
    "query",
    [
        "SELECT token_sha256 FROM agent_tokens",
        "SELECT payload FROM vps_events",
        "SELECT password_hash FROM users",
        "SELECT token_sha256 FROM api_tokens",
        "SELECT session_sha256 FROM sessions",
        "SELECT username FROM login_failures",
        "INSERT INTO performance_metrics VALUES (now(), 1, 1, 1, 2, 3, 4, 5, 6)",
        "UPDATE performance_metrics SET cpu_usage_percent = 0",
        "DELETE FROM performance_metrics",
        "UPDATE vps SET name = 'x'",
        "DELETE FROM vps",
        "INSERT INTO vps_events (vps_id, event_type) VALUES (1, 'decommissioned')",
        "TRUNCATE performance_metrics",
    ],
)
async def test_reader_is_refused(reader: Store, query: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await reader.conn.execute(query)
