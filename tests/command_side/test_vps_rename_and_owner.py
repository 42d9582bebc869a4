"""`vps rename`, `vps owner` and `user remove` through the real CLI: each change is a
versioned event, the projection follows it, and the log alone reproduces it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from projections.registry_rebuild import SHADOW_REGISTRY, build_shadow_registry
from query_side.accounts import create_user
from tests.storage.store import migrated_store
from tests.storage.test_migrations import run_cli
from vpsmon.settings import Settings


@pytest.fixture
async def conn(embedded_database: str) -> AsyncIterator[asyncpg.Connection]:
    settings = Settings(backend="postgresql")
    async with migrated_store(embedded_database, "postgresql", settings) as store:
        yield store.conn


async def cli_json(dsn: str, *args: str) -> Any:
    code, out, err = await run_cli(dsn, "postgresql", *args, "--json")
    assert code == 0, err
    return json.loads(out)


async def cli_refused(dsn: str, *args: str, message: str) -> None:
    code, _, err = await run_cli(dsn, "postgresql", *args)
    assert code == 1
    assert message in err
    assert "Traceback" not in err


async def stream(conn: asyncpg.Connection, vps_id: int) -> list[tuple[int, str, Any]]:
    rows = await conn.fetch(
        "SELECT version, event_type, payload FROM vps_events WHERE vps_id = $1 ORDER BY version",
        vps_id,
    )
    return [(r["version"], r["event_type"], json.loads(r["payload"])) for r in rows]


async def shadow_equals_live(conn: asyncpg.Connection) -> bool:
    live = await conn.fetch("SELECT * FROM vps ORDER BY id")
    async with conn.transaction():
        await build_shadow_registry(conn)
        shadow = await conn.fetch(f"SELECT * FROM {SHADOW_REGISTRY.vps} ORDER BY id")
    return [tuple(r) for r in shadow] == [tuple(r) for r in live]


async def test_vps_rename_is_a_versioned_event_that_the_log_reproduces(
    embedded_database: str, conn: asyncpg.Connection
) -> None:
    dsn = embedded_database
    vps_id = (await cli_json(dsn, "vps", "add", "web-1"))["vps_id"]

    renamed = await cli_json(dsn, "vps", "rename", str(vps_id), "  frontend-1  ")

    assert renamed == {"vps_id": vps_id, "name": "frontend-1"}
    assert [e[:2] for e in await stream(conn, vps_id)] == [(1, "registered"), (2, "renamed")]
    assert (await stream(conn, vps_id))[1][2] == {"name": "frontend-1"}
    event = await conn.fetchrow(
        "SELECT event_id, occurred_at FROM vps_events WHERE vps_id = $1 AND version = 2", vps_id
    )
    row = await conn.fetchrow("SELECT name, updated_at FROM vps WHERE id = $1", vps_id)
    assert event is not None
    assert row is not None
    assert (row["name"], row["updated_at"]) == ("frontend-1", event["occurred_at"])
    tracked = await conn.fetchval("SELECT last_event_id FROM projection_tracking")
    assert tracked == event["event_id"]
    assert await shadow_equals_live(conn)

    await cli_refused(dsn, "vps", "rename", "999", "x", message="no VPS with id 999")
    assert await cli_json(dsn, "vps", "remove", str(vps_id)) == {"vps_id": vps_id, "removed": True}
    # The stream says the VPS is gone: nothing more is appended to it.
    await cli_refused(dsn, "vps", "rename", str(vps_id), "x", message=f"no VPS with id {vps_id}")
    assert [e[:2] for e in await stream(conn, vps_id)][-1] == (3, "decommissioned")


async def test_owners_change_by_events_and_a_removed_user_leaves_hers_to_admins(
    embedded_database: str, conn: asyncpg.Connection
) -> None:
    dsn = embedded_database
    alice = await create_user(conn, "alice", "alice-password", admin=True)
    bob = await create_user(conn, "bob", "bob-password")
    vps_id = (await cli_json(dsn, "vps", "add", "web-1", "--owner", "alice"))["vps_id"]

    assert await cli_json(dsn, "vps", "owner", str(vps_id), "Bob") == {
        "vps_id": vps_id,
        "owner": "bob",
    }
    # He already owns it: nothing to record.
    assert (await cli_json(dsn, "vps", "owner", str(vps_id), "bob"))["owner"] == "bob"
    assert await cli_json(dsn, "vps", "owner", str(vps_id), "--none") == {
        "vps_id": vps_id,
        "owner": None,
    }
    code, out, err = await run_cli(dsn, "postgresql", "vps", "owner", str(vps_id), "bob")
    assert (code, out) == (0, f"VPS {vps_id} owner: bob\n"), err
    await cli_refused(dsn, "vps", "owner", str(vps_id), "nobody", message="no user named nobody")
    await cli_refused(dsn, "vps", "owner", "999", "bob", message="no VPS with id 999")

    removed = await cli_json(dsn, "user", "remove", "bob")

    assert removed == {"id": bob.id, "username": "bob", "vps_left_to_admins": 1}
    assert await conn.fetchval("SELECT owner_id FROM vps WHERE id = $1", vps_id) is None
    owners = [e[2]["owner_id"] for e in await stream(conn, vps_id) if e[1] == "owner_changed"]
    assert owners == [bob.id, None, bob.id, None]
    assert [e[0] for e in await stream(conn, vps_id)] == [1, 2, 3, 4, 5]
    assert (await stream(conn, vps_id))[0][2]["owner_id"] == alice.id
    assert await shadow_equals_live(conn)
