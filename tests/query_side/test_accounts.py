"""Accounts against a real database: passwords, API tokens, logins, rate limits, visibility."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import asyncpg
import pytest

from command_side.vps_commands import disown_vpses, register_vps
from projections.registry_rebuild import rebuild_vps_registry
from query_side.accounts import (
    INVALID_CREDENTIALS,
    User,
    authenticate_token,
    can_see_vps,
    create_api_token,
    create_user,
    find_user,
    first_admin,
    hash_password,
    login,
    logout,
    remove_user,
    revoke_api_token,
    session_user,
    verify_password,
    visible_vps_clause,
    visible_vps_ids,
)
from vpsmon.errors import LoginRefused

PASSWORD = "correct horse battery"


async def failures(conn: asyncpg.Connection, username: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM login_failures WHERE username = $1", username
    )
    return count


async def fail(conn: asyncpg.Connection, username: str, client_ip: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(LoginRefused) as refused:
            await login(conn, username, "wrong password", client_ip)
        assert refused.value.reason == INVALID_CREDENTIALS
        assert refused.value.retry_after_seconds is None


# --- passwords ---------------------------------------------------------------


def test_password_hash_format_and_verify() -> None:
    encoded = hash_password(PASSWORD)
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32
    assert PASSWORD not in encoded
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + "!", encoded)
    assert not verify_password("", encoded)
    # A fresh salt each time: equal passwords do not give equal hashes.
    other = hash_password(PASSWORD)
    assert other != encoded
    assert verify_password(PASSWORD, other)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain",
        "bcrypt$16384$8$1$AAAA$AAAA",
        "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$16384$8$1$not base64$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
    ],
)
def test_malformed_hashes_never_match(encoded: str) -> None:
    assert not verify_password(PASSWORD, encoded)


# --- users -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", PASSWORD, "1 to 64 characters"),
        ("a" * 65, PASSWORD, "1 to 64 characters"),
        ("with space", PASSWORD, "1 to 64 characters"),
        ("semi;colon", PASSWORD, "1 to 64 characters"),
        ("tr\u00e4ger", PASSWORD, "1 to 64 characters"),
        ("trailing\n", PASSWORD, "1 to 64 characters"),
        ("alice", "short", "at least 8 characters"),
        ("alice", "x" * 1025, "at most 1024 characters"),
    ],
)
async def test_create_user_validation(
    conn: asyncpg.Connection, username: str, password: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await create_user(conn, username, password)
    assert await conn.fetchval("SELECT count(*) FROM users") == 0


async def test_create_user_and_duplicates_in_any_case(conn: asyncpg.Connection) -> None:
    alice = await create_user(conn, "Alice.Smith@example-1_x", PASSWORD)
    assert alice == User(alice.id, "Alice.Smith@example-1_x", False)
    admin = await create_user(conn, "root", PASSWORD, admin=True)
    assert admin.is_admin
    with pytest.raises(ValueError, match=r"^user alice.smith@EXAMPLE-1_x already exists$"):
        await create_user(conn, "alice.smith@EXAMPLE-1_x", PASSWORD)
    assert await find_user(conn, "ALICE.smith@example-1_x") == alice
    assert await find_user(conn, "nobody") is None
    assert await first_admin(conn) == admin
    stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", alice.id)
    assert stored.startswith("scrypt$")
    assert verify_password(PASSWORD, stored)


# --- API tokens --------------------------------------------------------------


async def test_api_token_create_authenticate_revoke(conn: asyncpg.Connection) -> None:
    alice = await create_user(conn, "alice", PASSWORD)
    token = await create_api_token(conn, "ALICE", name="grafana")
    assert token.startswith("vpsa_")
    assert len(token) >= 5 + 43  # 256 random bits, url-safe base64
    assert await create_api_token(conn, "alice") != token

    row = await conn.fetchrow("SELECT * FROM api_tokens WHERE name = 'grafana'")
    assert row is not None
    assert row["token_sha256"] == hashlib.sha256(token.encode()).digest()
    assert row["user_id"] == alice.id
    assert row["last_used_at"] is None
    assert token not in json.dumps(
        [dict(r) for r in await conn.fetch("SELECT * FROM api_tokens")], default=str
    )

    assert await authenticate_token(conn, token) == alice
    assert await authenticate_token(conn, token + "x") is None
    assert await authenticate_token(conn, "vpss_" + token[5:]) is None
    assert await authenticate_token(conn, "") is None

    assert await revoke_api_token(conn, token)
    assert await authenticate_token(conn, token) is None
    assert not await revoke_api_token(conn, token)
    assert not await revoke_api_token(conn, "vpsa_unknown")

    with pytest.raises(LookupError, match="no user named bob"):
        await create_api_token(conn, "bob")


async def test_last_used_at_is_written_at_most_once_a_minute(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    token = await create_api_token(conn, "alice")
    digest = hashlib.sha256(token.encode()).digest()
    last_used = "SELECT last_used_at FROM api_tokens WHERE token_sha256 = $1"

    assert await authenticate_token(conn, token) is not None
    first = await conn.fetchval(last_used, digest)
    assert first is not None
    await conn.execute(
        "UPDATE api_tokens SET last_used_at = now() - interval '30 seconds'"
        " WHERE token_sha256 = $1",
        digest,
    )
    recent = await conn.fetchval(last_used, digest)
    assert await authenticate_token(conn, token) is not None
    assert await conn.fetchval(last_used, digest) == recent  # not rewritten

    await conn.execute(
        "UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' WHERE token_sha256 = $1",
        digest,
    )
    assert await authenticate_token(conn, token) is not None
    assert await conn.fetchval(last_used, digest) > recent


async def test_deleting_a_user_ends_their_tokens_and_sessions(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    token = await create_api_token(conn, "alice")
    _, session = await login(conn, "alice", PASSWORD, "10.0.0.1")
    await conn.execute("DELETE FROM users WHERE username = 'alice'")
    assert await authenticate_token(conn, token) is None
    assert await session_user(conn, session) is None
    assert await conn.fetchval("SELECT count(*) FROM api_tokens") == 0
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 0


# --- logins and sessions -----------------------------------------------------


async def test_login_session_logout(conn: asyncpg.Connection) -> None:
    alice = await create_user(conn, "Alice", PASSWORD)
    user, session = await login(conn, "alice", PASSWORD, "10.0.0.1")
    assert user == alice
    assert session.startswith("vpss_")
    assert await session_user(conn, session) == alice
    stored = await conn.fetchrow("SELECT * FROM sessions")
    assert stored is not None
    assert stored["session_sha256"] == hashlib.sha256(session.encode()).digest()
    lifetime = stored["expires_at"] - stored["created_at"]
    assert lifetime == timedelta(days=7)

    _, other = await login(conn, "ALICE", PASSWORD, "10.0.0.2", session_ttl=timedelta(hours=1))
    assert other != session

    await logout(conn, session)
    assert await session_user(conn, session) is None
    assert await session_user(conn, other) == alice  # only that session ended
    await logout(conn, session)  # again: a no-op
    await logout(conn, "garbage")
    assert await session_user(conn, "garbage") is None
    assert await session_user(conn, "vpsa_" + other[5:]) is None


async def test_expired_session_is_refused_and_pruned(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    _, session = await login(conn, "alice", PASSWORD, "10.0.0.1")
    await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert await session_user(conn, session) is None
    # The next login prunes it.
    _, fresh = await login(conn, "alice", PASSWORD, "10.0.0.1")
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 1
    assert await session_user(conn, fresh) is not None


async def test_session_lifetime_must_be_positive(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    with pytest.raises(ValueError, match="positive"):
        await login(conn, "alice", PASSWORD, "10.0.0.1", session_ttl=timedelta(0))


async def test_bad_credentials_are_refused_alike_and_recorded(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    await fail(conn, "alice", "10.0.0.1", 1)
    await fail(conn, "nobody", "10.0.0.1", 1)
    with pytest.raises(LoginRefused, match=INVALID_CREDENTIALS):
        await login(conn, "alice", "x" * 5000, "10.0.0.1")
    rows = await conn.fetch("SELECT username, client_ip FROM login_failures ORDER BY username")
    assert [tuple(r) for r in rows] == [
        ("alice", "10.0.0.1"),
        ("alice", "10.0.0.1"),
        ("nobody", "10.0.0.1"),
    ]
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 0


@pytest.mark.parametrize("hostile", ["\x00", "a\x00b", "\ud800", "x" * 10_000, "\u00e4", ""])
async def test_hostile_input_is_refused_never_an_error(
    conn: asyncpg.Connection, hostile: str
) -> None:
    alice = await create_user(conn, "alice", PASSWORD)
    with pytest.raises(LoginRefused, match=INVALID_CREDENTIALS):
        await login(conn, hostile, hostile, hostile)
    with pytest.raises(LoginRefused, match=INVALID_CREDENTIALS):
        await login(conn, "alice", hostile, "10.0.0.1")
    assert await find_user(conn, hostile) is None
    with pytest.raises(LookupError):
        await create_api_token(conn, hostile)
    for token in (hostile, "vpsa_" + hostile, "vpss_" + hostile):
        assert await authenticate_token(conn, token) is None
        assert await session_user(conn, token) is None
        assert not await revoke_api_token(conn, token)
        await logout(conn, token)
    for vps_id in (2**31, -(2**31) - 1, 10**20):
        assert not await can_see_vps(conn, alice, vps_id)
    assert await conn.fetchval("SELECT count(*) FROM login_failures") == 2


async def test_token_names_must_be_storable(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    for name in ("a\x00b", "x" * 201):
        with pytest.raises(ValueError, match="token name"):
            await create_api_token(conn, "alice", name)


# --- VPS ownership and visibility ---------------------------------------------


async def test_visibility_admin_owner_and_other_user(conn: asyncpg.Connection) -> None:
    admin = await create_user(conn, "root", PASSWORD, admin=True)
    alice = await create_user(conn, "alice", PASSWORD)
    bob = await create_user(conn, "bob", PASSWORD)
    carol = await create_user(conn, "carol", PASSWORD)
    a1 = (await register_vps(conn, "a1", owner_id=alice.id)).vps_id
    a2 = (await register_vps(conn, "a2", owner_id=alice.id)).vps_id
    b1 = (await register_vps(conn, "b1", owner_id=bob.id)).vps_id
    orphan = (await register_vps(conn, "orphan")).vps_id

    assert await visible_vps_ids(conn, admin) == [a1, a2, b1, orphan]
    assert await visible_vps_ids(conn, alice) == [a1, a2]
    assert await visible_vps_ids(conn, bob) == [b1]
    assert await visible_vps_ids(conn, carol) == []

    assert await can_see_vps(conn, admin, orphan)
    assert await can_see_vps(conn, alice, a1)
    assert not await can_see_vps(conn, alice, b1)
    assert not await can_see_vps(conn, bob, orphan)
    assert not await can_see_vps(conn, admin, 999)
    assert not await can_see_vps(conn, alice, 999)

    clause, args = visible_vps_clause(bob, table="v", first_param=2)
    assert (clause, args) == ("v.owner_id = $2", [bob.id])
    rows = await conn.fetch(f"SELECT v.id FROM vps v WHERE v.id = $1 AND {clause}", b1, *args)
    assert [r["id"] for r in rows] == [b1]
    assert visible_vps_clause(admin) == ("TRUE", [])
    with pytest.raises(ValueError, match="table name"):
        visible_vps_clause(bob, table="vps; DROP TABLE vps")

    # An owner is removed only after an event gives their VPSes up; then the
    # VPS is left to the admins.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("DELETE FROM users WHERE id = $1", bob.id)
    assert await disown_vpses(conn, bob.id) == [b1]
    await remove_user(conn, "bob")
    assert await conn.fetchval("SELECT owner_id FROM vps WHERE id = $1", b1) is None
    assert await visible_vps_ids(conn, admin) == [a1, a2, b1, orphan]


async def test_owner_is_in_the_registered_event_and_survives_a_rebuild(
    conn: asyncpg.Connection,
) -> None:
    alice = await create_user(conn, "alice", PASSWORD)
    bob = await create_user(conn, "bob", PASSWORD)
    owned = (await register_vps(conn, "owned", owner_id=alice.id)).vps_id
    orphan = (await register_vps(conn, "orphan")).vps_id
    bobs = (await register_vps(conn, "bobs", owner_id=bob.id)).vps_id
    await disown_vpses(conn, bob.id)
    await remove_user(conn, "bob")
    # An event written before owners existed has no owner_id at all.
    legacy: int = await conn.fetchval("SELECT nextval('vps_id_seq')")
    await conn.execute(
        "INSERT INTO vps_events (vps_id, version, event_type, payload)"
        " VALUES ($1, 1, 'registered', $2)",
        legacy,
        json.dumps({"name": "legacy", "token_sha256": "00" * 32}),
    )

    payloads = {
        r["vps_id"]: json.loads(r["payload"])
        for r in await conn.fetch("SELECT vps_id, payload FROM vps_events")
    }
    assert payloads[owned]["owner_id"] == alice.id
    assert payloads[orphan]["owner_id"] is None

    before = await conn.fetch("SELECT id, name, owner_id FROM vps ORDER BY id")
    await rebuild_vps_registry(conn)
    after = await conn.fetch("SELECT id, name, owner_id FROM vps ORDER BY id")
    assert [tuple(r) for r in after] == [
        *(tuple(r) for r in before),
        (legacy, "legacy", None),
    ]
    owners = {r["id"]: r["owner_id"] for r in after}
    assert owners == {owned: alice.id, orphan: None, bobs: None, legacy: None}


async def test_registering_for_an_unknown_owner_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="no user with id 42"):
        await register_vps(conn, "web-1", owner_id=42)
    assert await conn.fetchval("SELECT count(*) FROM vps_events") == 0
