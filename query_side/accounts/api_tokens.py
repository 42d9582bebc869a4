"""API tokens: bearer credentials for scripts, revoked with immediate effect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from query_side.accounts.credentials import looks_like, storable
from query_side.accounts.users import USERNAME_PATTERN, User, user_from
from vpsmon.constants import API_TOKEN_PREFIX
from vpsmon.errors import InvalidInputError, UnknownUserError
from vpsmon.storage.types import Queryable
from vpsmon.tokens import new_token, token_sha256

TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
TOKEN_NAME_MAX = 200


@dataclass(frozen=True)
class ApiTokenInfo:
    """What `vpsmon token list` shows: the hash's first hex digits name a token."""

    sha256_hex: str
    username: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def create_api_token(conn: Queryable, username: str, name: str = "") -> str:
    """A new API token for ``username``, in clear text: show it once, it is not stored.

    UnknownUserError for an unknown user.
    """
    if len(name) > TOKEN_NAME_MAX or storable(name, TOKEN_NAME_MAX) != name:
        raise InvalidInputError(
            f"a token name must be at most {TOKEN_NAME_MAX} characters, without NUL"
        )
    if not USERNAME_PATTERN.fullmatch(username):
        raise UnknownUserError(f"no user named {username}")
    token = new_token(API_TOKEN_PREFIX)
    inserted = await conn.fetchval(
        "INSERT INTO api_tokens (token_sha256, user_id, name)"
        " SELECT $1, id, $3 FROM users WHERE lower(username) = lower($2) RETURNING user_id",
        token_sha256(token),
        username,
        name,
    )
    if inserted is None:
        raise UnknownUserError(f"no user named {username}")
    return token


async def revoke_api_token(conn: Queryable, token: str) -> bool:
    """Revoke an active token; False when it is unknown or already revoked."""
    if not looks_like(token, API_TOKEN_PREFIX):
        return False
    return await revoke_api_token_by_digest(conn, token_sha256(token))


async def revoke_api_token_by_digest(conn: Queryable, sha256: bytes) -> bool:
    status: str = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL",
        sha256,
    )
    return status == "UPDATE 1"


async def list_api_tokens(conn: Queryable) -> list[ApiTokenInfo]:
    rows = await conn.fetch(
        "SELECT encode(t.token_sha256, 'hex') AS sha256_hex, u.username, t.name,"
        " t.created_at, t.last_used_at, t.revoked_at"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.created_at, u.username"
    )
    return [ApiTokenInfo(**dict(row)) for row in rows]


async def authenticate_token(conn: Queryable, token: str) -> User | None:
    """The user of an active API token, or None.

    Records the use in ``last_used_at``, at most once a minute per token so
    that busy clients do not turn every request into a write.
    """
    if not looks_like(token, API_TOKEN_PREFIX):
        return None
    sha256 = token_sha256(token)
    row = await conn.fetchrow(
        "SELECT u.id, u.username, u.is_admin,"
        " t.last_used_at IS NULL OR t.last_used_at < now() - $2::interval AS stale"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL",
        sha256,
        TOKEN_TOUCH_INTERVAL,
    )
    if row is None:
        return None
    if row["stale"]:
        await conn.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = $1"
            " AND (last_used_at IS NULL OR last_used_at < now() - $2::interval)",
            sha256,
            TOKEN_TOUCH_INTERVAL,
        )
    return user_from(row)
