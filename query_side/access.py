"""Who is asking, and may they see this VPS.

Every /api route but health and login needs a session cookie or a bearer API
token. Another user's VPS answers exactly like an unknown one (404), so ids
reveal nothing. Long-lived responses (the event stream) keep the `Caller` and
re-check it, so that logout, a password change, removing the user or revoking
the token ends them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sanic import Request

from query_side.accounts import User, authenticate_token, can_see_vps, session_user
from query_side.context import state
from vpsmon.constants import PG_INTEGER_MAX, SESSION_COOKIE
from vpsmon.errors import NotAuthenticatedError, UnknownVpsError
from vpsmon.storage.types import Queryable


@dataclass(frozen=True)
class Caller:
    """A user and the credential that proved it (kept to check it again later)."""

    user: User
    kind: Literal["api_token", "session"]
    credential: str

    async def still_valid(self, conn: Queryable) -> bool:
        """Whether the same credential still names the same user."""
        if self.kind == "api_token":
            user = await authenticate_token(conn, self.credential)
        else:
            user = await session_user(conn, self.credential)
        return user is not None and user.id == self.user.id


async def current_caller(request: Request) -> Caller:
    pool = state(request).pool
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticatedError("use 'Authorization: Bearer <api token>'")
        user = await authenticate_token(pool, token.strip())
        if user is None:
            raise NotAuthenticatedError("invalid or revoked API token")
        return Caller(user, "api_token", token.strip())
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        user = await session_user(pool, session)
        if user is None:
            raise NotAuthenticatedError("session expired; log in again")
        return Caller(user, "session", session)
    raise NotAuthenticatedError("log in or send an API token")


async def current_user(request: Request) -> User:
    return (await current_caller(request)).user


async def optional_user(request: Request) -> User | None:
    """The caller if their credentials are valid, else None (never a 401)."""
    try:
        return await current_user(request)
    except NotAuthenticatedError:
        return None


def _valid_id(vps_id: int) -> bool:
    return 0 < vps_id <= PG_INTEGER_MAX  # vps.id is an integer column


async def require_vps(request: Request, user: User, vps_id: int) -> None:
    if not _valid_id(vps_id) or not await can_see_vps(state(request).pool, user, vps_id):
        raise UnknownVpsError(f"VPS {vps_id} not found")
