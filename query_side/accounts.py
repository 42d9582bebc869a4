"""Accounts and access control: users, API tokens, login sessions, VPS visibility.

A pure data layer over asyncpg; the HTTP routes call it. Passwords are hashed
with scrypt (memory-hard); API and session tokens carry 256 random bits and
only their SHA-256 is stored, so a database dump reveals no credential.

Failed logins are rate-limited through the ``login_failures`` table, which
every query-side process shares: 5 failures for one username (from any
address) or 20 from one address within 15 minutes refuse further attempts
without checking the password, until the oldest of them leaves the window.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from vpsmon.storage.types import Connection, Queryable

API_TOKEN_PREFIX = "vpsa_"
SESSION_TOKEN_PREFIX = "vpss_"

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_DKLEN = 32
_SALT_BYTES = 16

LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_CLIENT = 20
FAILURE_RETENTION = timedelta(days=1)
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
DEFAULT_SESSION_TTL = timedelta(days=7)

INVALID_CREDENTIALS = "invalid username or password"
TOO_MANY_FAILURES = "too many failed logins; try again later"

# pg_advisory_xact_lock(classid, objid) namespaces for the login rate limit.
_LOCK_USERNAME = 736900010
_LOCK_CLIENT = 736900011
_CLIENT_IP_MAX = 100
_TOKEN_MAX = 200


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_admin: bool


class LoginRefused(Exception):
    """A login that did not succeed: bad credentials, or rate-limited."""

    def __init__(self, reason: str, retry_after_seconds: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


# --- passwords ---------------------------------------------------------------


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        # surrogatepass: any str hashes (never matching a real password) instead of raising.
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=dklen,
        maxmem=128 * r * (n + p + 2) + 1024 * 1024,
    )


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` with a fresh random salt (CPU-bound: ~50 ms)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _SCRYPT_DKLEN)
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``, compared in constant time.

    A malformed hash (or parameters outside sane bounds) never matches.
    """
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_text, validate=True)
        expected = base64.b64decode(digest_text, validate=True)
    except (ValueError, binascii.Error):
        return False
    if (
        scheme != "scrypt"
        or not 2 <= n <= 2**20
        or n & (n - 1)
        or not 1 <= r <= 32
        or not 1 <= p <= 16
        or not 16 <= len(expected) <= 64
    ):
        return False
    actual = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _verify_or_dummy(password: str, encoded: str | None) -> bool:
    """Spend the same KDF time whether or not the user exists."""
    if encoded is None:
        verify_password(password, _dummy_hash())
        return False
    return verify_password(password, encoded)


# --- users -------------------------------------------------------------------


def validate_username(username: str) -> None:
    if not USERNAME_PATTERN.fullmatch(username):
        raise ValueError(
            "a username must be 1 to 64 characters: letters, digits, '_', '.', '@' or '-'"
        )


def validate_password(password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"a password must be at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"a password must be at most {PASSWORD_MAX_LENGTH} characters")


def _storable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` and made safe for a PostgreSQL text value.

    Client input may hold NUL or lone surrogates, which PostgreSQL or UTF-8
    refuse; they are escaped rather than failing the request.
    """
    safe = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return safe.replace("\x00", "\\x00")


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["username"], row["is_admin"])


async def create_user(
    conn: Queryable, username: str, password: str, *, admin: bool = False
) -> User:
    """Create a user; ValueError for an invalid name or password or a taken name."""
    validate_username(username)
    validate_password(password)
    encoded = await asyncio.to_thread(hash_password, password)
    try:
        row = await conn.fetchrow(
            "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3)"
            " RETURNING id, username, is_admin",
            username,
            encoded,
            admin,
        )
    except asyncpg.UniqueViolationError:
        raise ValueError(f"user {username} already exists") from None
    assert row is not None
    return _user(row)


async def find_user(conn: Queryable, username: str) -> User | None:
    """The user with this name, compared without regard to case."""
    if not USERNAME_PATTERN.fullmatch(username):
        return None
    row = await conn.fetchrow(
        "SELECT id, username, is_admin FROM users WHERE lower(username) = lower($1)", username
    )
    return None if row is None else _user(row)


async def first_admin(conn: Queryable) -> User | None:
    """The admin created first: the default owner of a new VPS."""
    row = await conn.fetchrow(
        "SELECT id, username, is_admin FROM users WHERE is_admin ORDER BY id LIMIT 1"
    )
    return None if row is None else _user(row)


# --- API tokens --------------------------------------------------------------


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _looks_like(token: str, prefix: str) -> bool:
    return token.startswith(prefix) and len(token) <= _TOKEN_MAX


async def create_api_token(conn: Queryable, username: str, name: str = "") -> str:
    """A new API token for ``username``, in clear text: show it once, it is not stored.

    LookupError for an unknown user.
    """
    if len(name) > 200 or _storable(name, 200) != name:
        raise ValueError("a token name must be at most 200 characters, without NUL")
    if not USERNAME_PATTERN.fullmatch(username):
        raise LookupError(f"no user named {username}")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    inserted = await conn.fetchval(
        "INSERT INTO api_tokens (token_sha256, user_id, name)"
        " SELECT $1, id, $3 FROM users WHERE lower(username) = lower($2) RETURNING user_id",
        _digest(token),
        username,
        name,
    )
    if inserted is None:
        raise LookupError(f"no user named {username}")
    return token


async def revoke_api_token(conn: Queryable, token: str) -> bool:
    """Revoke an active token; False when it is unknown or already revoked."""
    if not _looks_like(token, API_TOKEN_PREFIX):
        return False
    status: str = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL",
        _digest(token),
    )
    return status == "UPDATE 1"


async def authenticate_token(conn: Queryable, token: str) -> User | None:
    """The user of an active API token, or None.

    Records the use in ``last_used_at``, at most once a minute per token so
    that busy clients do not turn every request into a write.
    """
    if not _looks_like(token, API_TOKEN_PREFIX):
        return None
    digest = _digest(token)
    row = await conn.fetchrow(
        "SELECT u.id, u.username, u.is_admin,"
        " t.last_used_at IS NULL OR t.last_used_at < now() - $2::interval AS stale"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL",
        digest,
        TOKEN_TOUCH_INTERVAL,
    )
    if row is None:
        return None
    if row["stale"]:
        await conn.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = $1"
            " AND (last_used_at IS NULL OR last_used_at < now() - $2::interval)",
            digest,
            TOKEN_TOUCH_INTERVAL,
        )
    return _user(row)


# --- logins and sessions -----------------------------------------------------


async def _retry_after(conn: Connection, column: str, key: str, limit: int) -> int | None:
    """Seconds until fewer than ``limit`` failures for ``key`` remain in the window.

    None while fewer than ``limit`` are in it.
    """
    seconds: int | None = await conn.fetchval(
        "SELECT greatest(1, ceil(extract(epoch FROM failed_at + $2::interval - now())))::int"
        f" FROM login_failures WHERE {column} = $1 AND failed_at > now() - $2::interval"
        " ORDER BY failed_at DESC OFFSET $3 LIMIT 1",
        key,
        LOGIN_WINDOW,
        limit - 1,
    )
    return seconds


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
    records the failure) or when the username or the client address has too
    many recent failures (then the password is not checked at all).

    Call it outside a transaction: the attempt is recorded before the
    password is checked, so that concurrent attempts in other processes count
    against the limit too, and a success clears the username's failures.
    """
    if session_ttl <= timedelta(0):
        raise ValueError("the session lifetime must be positive")
    key = _storable(username.lower(), _TOKEN_MAX)
    client = _storable(client_ip, _CLIENT_IP_MAX)
    async with conn.transaction():
        # Serialize attempts on this username and on this address across processes,
        # but only for the check and the record, not for the password check.
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2)),"
            " pg_advisory_xact_lock($3, hashtext($4))",
            _LOCK_USERNAME,
            key,
            _LOCK_CLIENT,
            client,
        )
        waits = [
            wait
            for wait in (
                await _retry_after(conn, "username", key, MAX_FAILURES_PER_USERNAME),
                await _retry_after(conn, "client_ip", client, MAX_FAILURES_PER_CLIENT),
            )
            if wait is not None
        ]
        if waits:
            raise LoginRefused(TOO_MANY_FAILURES, max(waits))
        # Counted as a failure until the password proves right.
        await conn.execute(
            "INSERT INTO login_failures (username, client_ip) VALUES ($1, $2)", key, client
        )
        await conn.execute(
            "DELETE FROM login_failures WHERE failed_at < now() - $1::interval", FAILURE_RETENTION
        )
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
    if len(password) > PASSWORD_MAX_LENGTH:
        matches = False  # no stored password is that long
    else:
        matches = await asyncio.to_thread(_verify_or_dummy, password, encoded)
    if row is None or not matches:
        raise LoginRefused(INVALID_CREDENTIALS, None)
    user = _user(row)
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with conn.transaction():
        await conn.execute("DELETE FROM login_failures WHERE username = $1", key)
        await conn.execute("DELETE FROM sessions WHERE expires_at <= now()")
        await conn.execute(
            "INSERT INTO sessions (session_sha256, user_id, expires_at)"
            " VALUES ($1, $2, now() + $3::interval)",
            _digest(token),
            user.id,
            session_ttl,
        )
    return user, token


async def session_user(conn: Queryable, session_token: str) -> User | None:
    """The user of an unexpired session, or None."""
    if not _looks_like(session_token, SESSION_TOKEN_PREFIX):
        return None
    row = await conn.fetchrow(
        "SELECT u.id, u.username, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.session_sha256 = $1 AND s.expires_at > now()",
        _digest(session_token),
    )
    return None if row is None else _user(row)


async def logout(conn: Queryable, session_token: str) -> None:
    """End a session (a no-op for an unknown or expired one)."""
    if _looks_like(session_token, SESSION_TOKEN_PREFIX):
        await conn.execute("DELETE FROM sessions WHERE session_sha256 = $1", _digest(session_token))


async def prune_expired(conn: Queryable) -> None:
    """Delete expired sessions and failed logins older than a day.

    Logins do this as they go; a periodic call keeps the tables small when
    nobody logs in.
    """
    await conn.execute("DELETE FROM sessions WHERE expires_at <= now()")
    await conn.execute(
        "DELETE FROM login_failures WHERE failed_at < now() - $1::interval", FAILURE_RETENTION
    )


# --- VPS visibility ----------------------------------------------------------


def visible_vps_clause(
    user: User, *, table: str = "vps", first_param: int = 1
) -> tuple[str, list[object]]:
    """A WHERE condition on ``table`` (the `vps` table or an alias of it) and its arguments.

    Admins see every VPS, including those without owner; other users only
    their own. ``first_param`` is the number of the first placeholder to use,
    e.g. ``clause, args = visible_vps_clause(user, table="v", first_param=2)``
    then ``conn.fetch(f"... FROM vps v WHERE v.id = $1 AND {clause}", vps_id, *args)``.
    """
    if not table.isidentifier():
        raise ValueError(f"not a table name or alias: {table!r}")
    if user.is_admin:
        return "TRUE", []
    return f"{table}.owner_id = ${first_param}", [user.id]


async def can_see_vps(conn: Queryable, user: User, vps_id: int) -> bool:
    """Whether the VPS exists and ``user`` may see it (otherwise: a 404)."""
    if not -(2**31) <= vps_id < 2**31:
        return False  # not an id the `vps` table can hold
    clause, args = visible_vps_clause(user, first_param=2)
    visible: bool = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM vps WHERE vps.id = $1 AND {clause})", vps_id, *args
    )
    return visible


async def visible_vps_ids(conn: Queryable, user: User) -> list[int]:
    """The ids of every VPS ``user`` may see, ascending."""
    clause, args = visible_vps_clause(user)
    rows = await conn.fetch(f"SELECT id FROM vps WHERE {clause} ORDER BY id", *args)
    return [row["id"] for row in rows]
