"""`vpsmon user add`, `vpsmon token create` and VPS owners through the real CLI."""

from __future__ import annotations

import json

import asyncpg

from query_side.accounts import authenticate_token, login
from tests.support.cli import Stdin, run_cli


async def test_user_add_with_password_on_stdin(embedded_migrated_database: str) -> None:
    code, out, err = await run_cli(
        embedded_migrated_database,
        "user",
        "add",
        "root",
        "--admin",
        stdin=b"s3cret pass\nignored\n",
    )
    assert code == 0, err
    assert out == "user 1 created: root (admin)\n"
    assert "s3cret" not in out + err

    code, out, err = await run_cli(
        embedded_migrated_database, "user", "add", "alice", stdin=b"alice-pw-1\r\n"
    )
    assert code == 0, err
    assert out == "user 2 created: alice\n"

    conn = await asyncpg.connect(embedded_migrated_database)
    try:
        user, _ = await login(conn, "root", "s3cret pass", "127.0.0.1")
        assert user.is_admin
        user, _ = await login(conn, "alice", "alice-pw-1", "127.0.0.1")
        assert not user.is_admin
    finally:
        await conn.close()


async def test_user_add_generates_a_password_on_a_terminal(embedded_migrated_database: str) -> None:
    cases: list[tuple[str, Stdin]] = [("alice", "tty"), ("bob", "devnull")]
    for name, stdin in cases:
        code, out, err = await run_cli(embedded_migrated_database, "user", "add", name, stdin=stdin)
        assert code == 0, err
        created, shown = out.splitlines()
        assert created.startswith("user ")
        assert shown.startswith("password (shown once): ")
        password = shown.rsplit(" ", 1)[-1]
        assert len(password) == 16  # secrets.token_urlsafe(12)
        conn = await asyncpg.connect(embedded_migrated_database)
        try:
            user, _ = await login(conn, name, password, "127.0.0.1")
            assert user.username == name
        finally:
            await conn.close()


async def test_user_add_refusals(embedded_migrated_database: str) -> None:
    code, _, err = await run_cli(
        embedded_migrated_database, "user", "add", "alice", stdin=b"short\n"
    )
    assert code == 1
    assert "at least 8 characters" in err
    code, _, err = await run_cli(
        embedded_migrated_database, "user", "add", "bad name", stdin=b"long enough\n"
    )
    assert code == 1
    assert "1 to 64 characters" in err
    code, _, err = await run_cli(
        embedded_migrated_database, "user", "add", "alice", stdin=b"long enough\n"
    )
    assert code == 0, err
    code, _, err = await run_cli(
        embedded_migrated_database, "user", "add", "ALICE", stdin=b"long enough\n"
    )
    assert code == 1
    assert "user ALICE already exists" in err
    assert "Traceback" not in err


async def test_token_create(embedded_migrated_database: str) -> None:
    code, _, err = await run_cli(
        embedded_migrated_database, "user", "add", "alice", stdin=b"long enough\n"
    )
    assert code == 0, err
    code, out, err = await run_cli(
        embedded_migrated_database, "token", "create", "alice", "--name", "grafana"
    )
    assert code == 0, err
    assert out.startswith("API token for alice (shown once): vpsa_")
    token = out.split()[-1]
    conn = await asyncpg.connect(embedded_migrated_database)
    try:
        user = await authenticate_token(conn, token)
        assert user is not None
        assert user.username == "alice"
        assert await conn.fetchval("SELECT name FROM api_tokens") == "grafana"
    finally:
        await conn.close()

    code, _, err = await run_cli(embedded_migrated_database, "token", "create", "nobody")
    assert code == 1
    assert "no user named nobody" in err
    assert "Traceback" not in err


async def test_vps_owners(embedded_migrated_database: str) -> None:
    # No user at all: no owner, and a note saying who will see it.
    code, out, err = await run_cli(embedded_migrated_database, "vps", "add", "early", "--json")
    assert code == 0, err
    assert json.loads(out)["owner"] is None
    assert "only admins will see it" in err

    for args, stdin in ((("alice",), b"alice-pw-1\n"), (("root", "--admin"), b"root-pw-12\n")):
        code, _, err = await run_cli(embedded_migrated_database, "user", "add", *args, stdin=stdin)
        assert code == 0, err

    # Default: the first admin. Explicit: the named user, in any case.
    code, out, err = await run_cli(embedded_migrated_database, "vps", "add", "web-1", "--json")
    assert code == 0, err
    assert json.loads(out)["owner"] == "root"
    assert err == ""
    code, out, err = await run_cli(
        embedded_migrated_database, "vps", "add", "web-2", "--owner", "Alice"
    )
    assert code == 0, err
    assert "(owner: alice)" in out

    code, _, err = await run_cli(
        embedded_migrated_database, "vps", "add", "web-3", "--owner", "nobody"
    )
    assert code == 1
    assert "no user named nobody" in err
    assert "Traceback" not in err

    code, out, err = await run_cli(embedded_migrated_database, "vps", "list", "--json")
    assert code == 0, err
    assert [(v["name"], v["owner"]) for v in json.loads(out)] == [
        ("early", None),
        ("web-1", "root"),
        ("web-2", "alice"),
    ]
    code, out, err = await run_cli(embedded_migrated_database, "vps", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert "early  owner: -" in lines[0]
    assert "web-2  owner: alice" in lines[2]
