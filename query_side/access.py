"""Who is asking, and may they see this VPS.

Every /api route but health and login needs a session cookie or a bearer API
token. Another user's VPS answers exactly like an unknown one (404), so ids
reveal nothing.
"""

from __future__ import annotations

from sanic import Request

from query_side.accounts import User, authenticate_token, can_see_vps, session_user
from query_side.context import state
from query_side.errors import ApiError, not_found

SESSION_COOKIE = "vpsmon_session"


async def current_user(request: Request) -> User:
    pool = state(request).pool
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "use 'Authorization: Bearer <api token>'")
        user = await authenticate_token(pool, token.strip())
        if user is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API token")
        return user
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        user = await session_user(pool, session)
        if user is None:
            raise ApiError(401, "unauthorized", "session expired; log in again")
        return user
    raise ApiError(401, "unauthorized", "log in or send an API token")


_MAX_ID = 2**31 - 1  # vps.id is an integer column


async def require_vps(request: Request, user: User, vps_id: int) -> None:
    if not 0 < vps_id <= _MAX_ID or not await can_see_vps(state(request).pool, user, vps_id):
        raise not_found(f"VPS {vps_id}")
