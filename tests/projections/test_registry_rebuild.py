"""The VPS registry rebuilt from vps_events alone equals the live one row for row; the
production rebuild repairs damage without losing a measurement; the follower goes on
from its tracked position. Both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from command_side.vps_commands import (
    change_vps_owner,
    configure_agent,
    decommission_vps,
    disown_vpses,
    register_vps,
    rename_vps,
    revoke_agent_token,
    rotate_agent_token,
)
from command_side.vps_stream import load_vps
from projections.registry_rebuild import (
    SHADOW_REGISTRY,
    build_shadow_registry,
    rebuild_vps_registry,
)
from projections.vps_registry import LIVE_REGISTRY, RegistryTables, catch_up
from query_side.accounts import create_user, remove_user
from vpsmon.constants import VPS_RENAMED
from vpsmon.storage.event_log import append_vps_event

PASSWORD = "correct horse battery"
Rows = dict[str, list[tuple[object, ...]]]


@dataclass(frozen=True)
class History:
    conn: asyncpg.Connection
    web: int
    db: int
    cache: int
    gone: int


async def registry_rows(conn: asyncpg.Connection, tables: RegistryTables) -> Rows:
    queries = {
        "vps": f"SELECT * FROM {tables.vps} ORDER BY id",
        "agent_tokens": f"SELECT * FROM {tables.agent_tokens} ORDER BY token_sha256",
        "agent_config": f"SELECT * FROM {tables.agent_config} ORDER BY vps_id",
    }
    return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in queries.items()}


async def position(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval(
        "SELECT last_event_id FROM projection_tracking WHERE projection = 'vps_registry'"
    )
    return value


async def newest_event(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("SELECT max(event_id) FROM vps_events")
    return value


@pytest.fixture
async def history(migrated_database: str) -> AsyncIterator[History]:
    """A fleet's life through the commands: every kind of VPS event, owners set and
    removed, and measurements."""
    conn = await asyncpg.connect(migrated_database)
    try:
        alice = await create_user(conn, "alice", PASSWORD, admin=True)
        bob = await create_user(conn, "bob", PASSWORD)
        web = (await register_vps(conn, "web-1", owner_id=alice.id)).vps_id
        db = (await register_vps(conn, "db-1", owner_id=bob.id)).vps_id
        cache = (await register_vps(conn, "cache-1")).vps_id
        gone = (await register_vps(conn, "tmp-1", owner_id=bob.id)).vps_id
        await rename_vps(conn, web, "frontend-1")
        await rotate_agent_token(conn, web)
        await rotate_agent_token(conn, web)
        await revoke_agent_token(conn, cache)
        await configure_agent(conn, db, collect_interval_seconds=5, upload_batch_max_size=100)
        await configure_agent(conn, db, upload_interval_seconds=30)
        await configure_agent(conn, gone, collect_interval_seconds=2)
        await change_vps_owner(conn, cache, alice.id)
        await change_vps_owner(conn, web, bob.id)
        await change_vps_owner(conn, web, alice.id)
        await decommission_vps(conn, gone)
        assert await disown_vpses(conn, bob.id) == [db]
        await remove_user(conn, "bob")
        await rename_vps(conn, db, "db-primary")
        for vps_id in (web, db):
            await conn.execute(
                "INSERT INTO performance_metrics VALUES (now(), $1, 1, 1, 2, 3, 4, 5, 6)", vps_id
            )
        yield History(conn, web, db, cache, gone)
    finally:
        await conn.close()


async def test_the_log_alone_rebuilds_the_live_registry(history: History) -> None:
    conn = history.conn
    live = await registry_rows(conn, LIVE_REGISTRY)
    assert [(row[0], row[1]) for row in live["vps"]] == [
        (history.web, "frontend-1"),
        (history.db, "db-primary"),
        (history.cache, "cache-1"),
    ]
    assert len(live["agent_tokens"]) == 5  # 3 for web (2 revoked), db's, cache's (revoked)
    assert await position(conn) == await newest_event(conn)

    transaction = conn.transaction()
    await transaction.start()
    try:
        # Nothing left but the log: no registry row, no user (undone below).
        await conn.execute("DELETE FROM vps")
        await conn.execute("DELETE FROM users")
        replayed, last_event_id = await build_shadow_registry(conn)
        shadow = await registry_rows(conn, SHADOW_REGISTRY)
    finally:
        await transaction.rollback()

    assert shadow == live
    assert replayed == await conn.fetchval("SELECT count(*) FROM vps_events")
    assert last_event_id == await newest_event(conn)
    assert await registry_rows(conn, LIVE_REGISTRY) == live


async def test_rebuild_repairs_the_registry_and_keeps_measurements(history: History) -> None:
    conn = history.conn
    live = await registry_rows(conn, LIVE_REGISTRY)
    # Damage every table of the registry.
    await conn.execute("UPDATE vps SET name = 'stale', owner_id = NULL WHERE id = $1", history.web)
    await conn.execute(
        "UPDATE agent_tokens SET revoked_at = now() WHERE vps_id = $1 AND revoked_at IS NULL",
        history.web,
    )
    await conn.execute("DELETE FROM agent_tokens WHERE vps_id = $1", history.db)
    await conn.execute("DELETE FROM vps_agent_config")
    await conn.execute(
        "INSERT INTO vps (id, name, created_at, updated_at) VALUES ($1, 'ghost', now(), now())",
        history.gone,
    )
    await conn.execute("UPDATE projection_tracking SET last_event_id = 0")
    assert await registry_rows(conn, LIVE_REGISTRY) != live

    replayed = await rebuild_vps_registry(conn)

    assert replayed == await conn.fetchval("SELECT count(*) FROM vps_events")
    assert await registry_rows(conn, LIVE_REGISTRY) == live
    assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == 2
    assert await position(conn) == await newest_event(conn)
    # The next command goes on from there.
    await rename_vps(conn, history.cache, "cache-2")
    assert await position(conn) == await newest_event(conn)


async def test_the_follower_resumes_after_its_tracked_position(history: History) -> None:
    conn = history.conn
    start = await position(conn)
    async with conn.transaction():
        # Appended but not applied: the registry lags two events behind the log.
        version = (await load_vps(conn, history.web)).version
        for step, name in enumerate(("unapplied-1", "unapplied-2"), start=1):
            await append_vps_event(conn, history.web, version + step, VPS_RENAMED, {"name": name})
    assert await position(conn) == start
    assert await conn.fetchval("SELECT name FROM vps WHERE id = $1", history.web) == "frontend-1"

    assert await catch_up(conn) == 2
    assert await conn.fetchval("SELECT name FROM vps WHERE id = $1", history.web) == "unapplied-2"
    assert await position(conn) == await newest_event(conn)
    assert await catch_up(conn) == 0
