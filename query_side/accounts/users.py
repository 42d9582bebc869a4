"""Users: create, find, list, change a password, remove.

Changing a password or removing a user ends every session of that user in the
same transaction; open event streams notice within seconds (they re-check).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from query_side.accounts.passwords import hash_password, validate_password
from vpsmon import constants
from vpsmon.errors import DuplicateKeyError, InvalidInputError, UnknownUserError
from vpsmon.storage.errors import translated_errors
from vpsmon.storage.types import Connection, Queryable

USERNAME_PATTERN = re.compile(constants.USERNAME_PATTERN)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_admin: bool


@dataclass(frozen=True)
class UserSummary:
    """One line of `vpsmon user list`: no secret, only counts."""

    id: int
    username: str
    is_admin: bool
    created_at: datetime
    vps: int
    active_sessions: int
    active_api_tokens: int


def validate_username(username: str) -> None:
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInputError(f"a username must be {constants.USERNAME_RULE}")


def user_from(row: asyncpg.Record) -> User:
    return User(row["id"], row["username"], row["is_admin"])


async def create_user(
    conn: Queryable, username: str, password: str, *, admin: bool = False
) -> User:
    """Create a user; InvalidInputError for an invalid name or password or a taken name."""
    validate_username(username)
    validate_password(password)
    encoded = await asyncio.to_thread(hash_password, password)
    try:
        with translated_errors():
            row = await conn.fetchrow(
                "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3)"
                " RETURNING id, username, is_admin",
                username,
                encoded,
                admin,
            )
    except DuplicateKeyError:
        raise InvalidInputError(f"user {username} already exists") from None
    assert row is not None
    return user_from(row)


async def find_user(conn: Queryable, username: str) -> User | None:
    """The user with this name, compared without regard to case."""
    if not USERNAME_PATTERN.fullmatch(username):
        return None
    row = await conn.fetchrow(
        "SELECT id, username, is_admin FROM users WHERE lower(username) = lower($1)", username
    )
    return None if row is None else user_from(row)


async def first_admin(conn: Queryable) -> User | None:
    """The admin created first: the default owner of a new VPS."""
    row = await conn.fetchrow(
        "SELECT id, username, is_admin FROM users WHERE is_admin ORDER BY id LIMIT 1"
    )
    return None if row is None else user_from(row)


async def resolve_owner(conn: Queryable, username: str | None) -> User | None:
    """The named user, or by default the first admin (None when there is none).

    UnknownUserError for a name with no user.
    """
    if username is None:
        return await first_admin(conn)
    owner = await find_user(conn, username)
    if owner is None:
        raise UnknownUserError(f"no user named {username}")
    return owner


async def list_users(conn: Queryable) -> list[UserSummary]:
    rows = await conn.fetch(
        "SELECT u.id, u.username, u.is_admin, u.created_at,"
        " (SELECT count(*) FROM vps v WHERE v.owner_id = u.id) AS vps,"
        " (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > now())"
        "   AS active_sessions,"
        " (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL)"
        "   AS active_api_tokens"
        " FROM users u ORDER BY u.id"
    )
    return [UserSummary(**dict(row)) for row in rows]


async def set_password(conn: Connection, username: str, password: str) -> int:
    """Replace the password and end every session of the user; returns how many ended.

    UnknownUserError for an unknown user, InvalidInputError for an invalid password. API
    tokens stay valid: they are separate credentials (`vpsmon token revoke`).
    """
    validate_password(password)
    user = await find_user(conn, username)
    if user is None:
        raise UnknownUserError(f"no user named {username}")
    encoded = await asyncio.to_thread(hash_password, password)
    async with conn.transaction():
        status: str = await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user.id, encoded
        )
        if status != "UPDATE 1":
            raise UnknownUserError(f"no user named {username}")
        ended: str = await conn.execute("DELETE FROM sessions WHERE user_id = $1", user.id)
    return int(ended.split()[-1])


async def remove_user(conn: Queryable, username: str) -> User:
    """Delete a user: their sessions and API tokens go with them (ON DELETE CASCADE).
    The database refuses to delete an owner: `vpsmon user remove` first gives their
    VPSes up by events (command_side.vps_commands.disown_vpses), in one transaction.

    UnknownUserError for an unknown user.
    """
    if not USERNAME_PATTERN.fullmatch(username):
        raise UnknownUserError(f"no user named {username}")
    row = await conn.fetchrow(
        "DELETE FROM users WHERE lower(username) = lower($1) RETURNING id, username, is_admin",
        username,
    )
    if row is None:
        raise UnknownUserError(f"no user named {username}")
    return user_from(row)
