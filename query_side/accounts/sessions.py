"""Logins and sessions: the cookie holds a random token, the table only its hash."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from query_side.accounts.credentials import looks_like, storable
from query_side.accounts.passwords import verify_or_dummy
from query_side.accounts.throttling import (
    CLIENT_ADDRESS_MAX,
    FAILURE_RETENTION,
    USERNAME_KEY_MAX,
    check_and_record_attempt,
    clear_failures,
)
from query_side.accounts.users import USERNAME_PATTERN, User, user_from
from vpsmon.constants import SESSION_LIFETIME_S, SESSION_TOKEN_PREFIX
from vpsmon.errors import LoginRefused, LoginThrottledError
from vpsmon.storage.types import Connection, Queryable
from vpsmon.tokens import new_token, token_sha256

DEFAULT_SESSION_TTL = timedelta(seconds=SESSION_LIFETIME_S)

INVALID_CREDENTIALS = "invalid username or password"
TOO_MANY_FAILURES = "too many failed logins; try again later"


async def login(
    conn: Connection,
    username: str,
    password: str,
    client_ip: str,
    *,
    session_ttl: timedelta = DEFAULT_SESSION_TTL,
) -> tuple[User, str]:
    """Check a username and password and open a session.

    Returns the user and a new session token (clear text: the cookie's value;
    only its hash is stored). Raises LoginRefused for bad credentials (and
    records the failure) or while this (username, address) pair or this
    address must wait (then the password is not checked at all).

    Call it outside a transaction: the attempt is recorded before the
    password is checked, so that concurrent attempts in other processes count.
    """
    if session_ttl <= timedelta(0):
        raise ValueError("the session lifetime must be positive")
    key = storable(username.lower(), USERNAME_KEY_MAX)
    client = storable(client_ip, CLIENT_ADDRESS_MAX)
    async with conn.transaction():
        wait = await check_and_record_attempt(conn, key, client)
        if wait is not None:
            raise LoginThrottledError(TOO_MANY_FAILURES, wait)
        row = (
            await conn.fetchrow(
                "SELECT id, username, is_admin, password_hash FROM users"
                " WHERE lower(username) = lower($1)",
                username,
            )
            if USERNAME_PATTERN.fullmatch(username)
            else None  # no such user can exist
        )
    encoded = None if row is None else row["password_hash"]
    matches = await asyncio.to_thread(verify_or_dummy, password, encoded)
    if row is None or not matches:
        raise LoginRefused(INVALID_CREDENTIALS)
    user = user_from(row)
    token = new_token(SESSION_TOKEN_PREFIX)
    async with conn.transaction():
        # The password may have changed while it was being checked. (No row
        # lock: the query role may not lock users; the sessions FK keeps the
        # user from vanishing before this commits.)
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND password_hash = $2)",
            user.id,
            encoded,
        ):
            raise LoginRefused(INVALID_CREDENTIALS)
        await clear_failures(conn, key, client)
        await conn.execute("DELETE FROM sessions WHERE expires_at <= now()")
        await conn.execute(
            "INSERT INTO sessions (session_sha256, user_id, expires_at)"
            " VALUES ($1, $2, now() + $3::interval)",
            token_sha256(token),
            user.id,
            session_ttl,
        )
    return user, token


async def session_user(conn: Queryable, session_token: str) -> User | None:
    """The user of an unexpired session, or None."""
    if not looks_like(session_token, SESSION_TOKEN_PREFIX):
        return None
    row = await conn.fetchrow(
        "SELECT u.id, u.username, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.session_sha256 = $1 AND s.expires_at > now()",
        token_sha256(session_token),
    )
    return None if row is None else user_from(row)


async def logout(conn: Queryable, session_token: str) -> None:
    """End a session (a no-op for an unknown or expired one)."""
    if looks_like(session_token, SESSION_TOKEN_PREFIX):
        await conn.execute(
            "DELETE FROM sessions WHERE session_sha256 = $1", token_sha256(session_token)
        )


async def prune_expired(conn: Queryable) -> None:
    """Delete expired sessions and failed logins older than a day.

    Logins do this as they go; a periodic call keeps the tables small when
    nobody logs in.
    """
    await conn.execute("DELETE FROM sessions WHERE expires_at <= now()")
    await conn.execute(
        "DELETE FROM login_failures WHERE failed_at < now() - $1::interval", FAILURE_RETENTION
    )
