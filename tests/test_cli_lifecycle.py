"""The rest of the account and VPS lifecycle through the real CLI and a real database:
`user passwd|remove|list`, `token list|revoke`, `vps rename|remove`, each with --json."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest

from command_side.vps_commands import register_vps, vps_for_token
from projections.rebuild import rebuild_projections
from query_side.accounts import authenticate_token, create_api_token, find_user, login, session_user
from tests.support.cli import run_cli
from tests.support.command_side import command_side
from tests.support.synthetic_agent import SyntheticAgent, snapshot
from vpsmon.errors import LoginRefused
from vpsmon.storage.backend import Backend


@pytest.fixture
async def conn(embedded_migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    code, _, err = await run_cli(
        embedded_migrated_database, "user", "add", "alice", stdin=b"alice-pw-1\n"
    )
    assert code == 0, err
    root = await ok_json(
        embedded_migrated_database, "user", "add", "root", "--admin", stdin=b"root-pw-12\n"
    )
    assert root == {"id": 2, "username": "root", "is_admin": True, "password": None}
    connection = await asyncpg.connect(embedded_migrated_database)
    try:
        yield connection
    finally:
        await connection.close()


async def ok_json(dsn: str, *args: str, stdin: bytes | None = None) -> Any:
    code, out, err = await run_cli(dsn, *args, "--json", stdin=stdin or "devnull")
    assert code == 0, err
    return json.loads(out)


async def refused(dsn: str, *args: str, message: str, stdin: bytes | None = None) -> None:
    code, out, err = await run_cli(dsn, *args, stdin=stdin or "devnull")
    assert code == 1, out
    assert message in err, err
    assert "Traceback" not in err


async def test_user_list_passwd_remove(
    embedded_migrated_database: str, conn: asyncpg.Connection
) -> None:
    dsn = embedded_migrated_database
    alice = await find_user(conn, "alice")
    assert alice is not None
    web = await register_vps(conn, "web-1", owner_id=alice.id)
    _, session = await login(conn, "alice", "alice-pw-1", "10.0.0.1")
    token = await create_api_token(conn, "alice", "grafana")

    listed = {u["username"]: u for u in await ok_json(dsn, "user", "list")}
    assert listed["alice"]["is_admin"] is False
    assert (listed["alice"]["vps"], listed["alice"]["active_sessions"]) == (1, 1)
    assert listed["alice"]["active_api_tokens"] == 1
    assert listed["root"]["is_admin"] is True
    code, out, err = await run_cli(dsn, "user", "list")
    assert code == 0, err
    assert "alice  user  vps: 1  sessions: 1  api tokens: 1" in out

    # A new password from stdin ends her sessions; her API token is a separate credential.
    changed = await ok_json(dsn, "user", "passwd", "ALICE", stdin=b"alice-pw-2\n")
    assert changed == {"username": "ALICE", "sessions_ended": 1, "password": None}
    assert await session_user(conn, session) is None
    with pytest.raises(LoginRefused):
        await login(conn, "alice", "alice-pw-1", "10.0.0.1")
    await login(conn, "alice", "alice-pw-2", "10.0.0.1")
    assert await authenticate_token(conn, token) is not None
    # Without stdin a password is generated and shown once.
    generated = await ok_json(dsn, "user", "passwd", "alice")
    assert generated["sessions_ended"] == 1
    await login(conn, "alice", generated["password"], "10.0.0.1")
    code, out, err = await run_cli(dsn, "user", "passwd", "alice", stdin=b"alice-pw-3\n")
    assert (code, out) == (0, "password of alice changed; 1 session(s) ended\n"), err

    await refused(dsn, "user", "passwd", "alice", message="at least 8 characters", stdin=b"short\n")
    await refused(dsn, "user", "passwd", "nobody", message="no user named nobody")

    removed = await ok_json(dsn, "user", "remove", "alice")
    assert removed == {"id": alice.id, "username": "alice", "vps_left_to_admins": 1}
    assert await authenticate_token(conn, token) is None
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
    assert await conn.fetchval("SELECT owner_id FROM vps WHERE id = $1", web.vps_id) is None
    await refused(dsn, "user", "remove", "alice", message="no user named alice")
    await refused(dsn, "user", "remove", "bad name", message="no user named bad name")
    assert [u["username"] for u in await ok_json(dsn, "user", "list")] == ["root"]


async def test_token_list_and_revoke(
    embedded_migrated_database: str, conn: asyncpg.Connection
) -> None:
    dsn = embedded_migrated_database
    created = await ok_json(dsn, "token", "create", "alice", "--name", "grafana")
    api_token = created["token"]
    other_api = await create_api_token(conn, "root")
    web = await register_vps(conn, "web-1")

    tokens = await ok_json(dsn, "token", "list")
    assert sorted((t["kind"], t["user"], t["vps_id"]) for t in tokens) == [
        ("agent", None, web.vps_id),
        ("api", "alice", None),
        ("api", "root", None),
    ]
    assert all(t["active"] and len(t["id"]) == 12 for t in tokens)
    api_id = next(t["id"] for t in tokens if t["user"] == "alice")
    assert api_id == created["id"]
    agent_id = next(t["id"] for t in tokens if t["kind"] == "agent")
    text = (await run_cli(dsn, "token", "list"))[1]
    assert f"agent  {agent_id}  VPS {web.vps_id} (web-1)" in text
    assert f"api    {api_id}  alice  grafana" in text
    assert api_token not in json.dumps(tokens) + text

    revoked = await ok_json(dsn, "token", "revoke", api_id)
    assert (revoked["kind"], revoked["revoked"], revoked["user"]) == ("api", True, "alice")
    assert await authenticate_token(conn, api_token) is None
    assert await authenticate_token(conn, other_api) is not None
    await refused(dsn, "token", "revoke", api_id, message=f"token {api_id} is already revoked")
    await refused(dsn, "token", "revoke", "0" * 7, message="at least 8 hex digits")
    await refused(dsn, "token", "revoke", "not-hex!", message="at least 8 hex digits")
    unknown = next(
        p for p in ("00000000", "ffffffff") if not any(t["id"].startswith(p) for t in tokens)
    )
    await refused(dsn, "token", "revoke", unknown, message=f"no token with id {unknown}")
    # The clear-text token names itself too.
    code, out, err = await run_cli(dsn, "token", "revoke", other_api)
    assert code == 0, err
    assert out.startswith("API token ")
    assert "of root revoked" in out

    code, out, err = await run_cli(dsn, "token", "revoke", agent_id)
    assert code == 0, err
    assert f"vpsmon vps rotate-token {web.vps_id}" in out
    assert await vps_for_token(conn, web.token) is None
    assert await ok_json(dsn, "token", "list") == []
    assert {t["id"] for t in await ok_json(dsn, "token", "list", "--all")} == {
        api_id,
        agent_id,
        next(t["id"] for t in tokens if t["user"] == "root"),
    }
    # A revocation is an event: a rebuild of the projections keeps it revoked.
    await rebuild_projections(conn, Backend.POSTGRESQL)
    assert await vps_for_token(conn, web.token) is None
    rotated = await ok_json(dsn, "vps", "rotate-token", str(web.vps_id))
    assert await vps_for_token(conn, rotated["agent_token"]) == web.vps_id


async def test_revoking_an_agent_token_closes_its_open_stream(
    embedded_migrated_database: str, conn: asyncpg.Connection
) -> None:
    web = await register_vps(conn, "web-1")
    (agent_token,) = await ok_json(embedded_migrated_database, "token", "list")
    async with command_side(embedded_migrated_database) as side:
        agent = SyntheticAgent(side.address)
        try:
            await agent.handshake(web.token)
            assert (await agent.send_batch([snapshot()])).accepted == 1
            await ok_json(embedded_migrated_database, "token", "revoke", agent_token["id"])
            assert await agent.status() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await agent.close()


async def test_vps_rename_and_remove(
    embedded_migrated_database: str, conn: asyncpg.Connection
) -> None:
    dsn = embedded_migrated_database
    web = await register_vps(conn, "web-1")
    renamed = await ok_json(dsn, "vps", "rename", str(web.vps_id), "  frontend-1  ")
    assert renamed == {"vps_id": web.vps_id, "name": "frontend-1"}
    assert await conn.fetchval("SELECT name FROM vps WHERE id = $1", web.vps_id) == "frontend-1"
    events = await conn.fetch(
        "SELECT event_type, payload FROM vps_events WHERE vps_id = $1 ORDER BY event_id",
        web.vps_id,
    )
    assert [e["event_type"] for e in events] == ["registered", "renamed"]
    assert json.loads(events[1]["payload"]) == {"name": "frontend-1"}
    # The projection is rebuilt from the log: the new name is replayed.
    await conn.execute("UPDATE vps SET name = 'stale' WHERE id = $1", web.vps_id)
    await rebuild_projections(conn, Backend.POSTGRESQL)
    assert await conn.fetchval("SELECT name FROM vps WHERE id = $1", web.vps_id) == "frontend-1"
    code, out, err = await run_cli(dsn, "vps", "rename", str(web.vps_id), "frontend-2")
    assert (code, out) == (0, f"VPS {web.vps_id} renamed to frontend-2\n"), err

    await refused(dsn, "vps", "rename", str(web.vps_id), "   ", message="1 to 200 characters")
    await refused(dsn, "vps", "rename", str(web.vps_id), "x" * 201, message="1 to 200 characters")
    await refused(dsn, "vps", "rename", "999", "other", message="no VPS with id 999")
    assert await conn.fetchval("SELECT count(*) FROM vps_events") == 3

    assert await ok_json(dsn, "vps", "remove", str(web.vps_id)) == {
        "vps_id": web.vps_id,
        "removed": True,
    }
    assert await conn.fetchval("SELECT count(*) FROM vps") == 0
    await refused(dsn, "vps", "remove", str(web.vps_id), message=f"no VPS with id {web.vps_id}")
    await refused(dsn, "vps", "rename", str(web.vps_id), "back", message="no VPS with id")
