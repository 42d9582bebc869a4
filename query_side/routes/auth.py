"""Login and logout with an HttpOnly, SameSite session cookie.

Login takes only `application/json`: a browser sends that type cross-site only
after a CORS preflight, which this server never grants, so no other site can
log a visitor in to an account of its choosing (login CSRF). The cookie is
`Secure` whenever the request came over TLS, directly or via a trusted proxy.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import ValidationError
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from query_side.access import current_user
from query_side.accounts import DEFAULT_SESSION_TTL, login, logout
from query_side.client import came_over_tls, client_address
from query_side.context import state
from query_side.responses import json_response
from query_side.schemas import LoginRequest
from vpsmon.constants import SESSION_COOKIE
from vpsmon.errors import InvalidBodyError, UnsupportedMediaTypeError

bp = Blueprint("auth", url_prefix="/api/auth")

SESSION_TTL: timedelta = DEFAULT_SESSION_TTL
LOGIN_CONTENT_TYPE = "application/json"


def _parse_login(request: Request) -> LoginRequest:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != LOGIN_CONTENT_TYPE:
        raise UnsupportedMediaTypeError(
            f"send the credentials as {LOGIN_CONTENT_TYPE}, not {media_type[:64] or 'no type'}"
        )
    try:
        return LoginRequest.model_validate_json(request.body or b"")
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidBodyError(problems) from None


@bp.post("/login")
async def login_route(request: Request) -> HTTPResponse:
    credentials = _parse_login(request)
    trusted = state(request).settings.trusted_proxies
    client_ip = client_address(request, trusted)
    async with state(request).pool.acquire() as conn:
        user, session = await login(
            conn,
            credentials.username,
            credentials.password,
            client_ip,
            session_ttl=SESSION_TTL,
        )
    response = json_response({"username": user.username, "is_admin": user.is_admin})
    response.add_cookie(
        SESSION_COOKIE,
        session,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=came_over_tls(request, trusted),
        max_age=int(SESSION_TTL.total_seconds()),
    )
    return response


@bp.post("/logout")
async def logout_route(request: Request) -> HTTPResponse:
    await current_user(request)
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        await logout(state(request).pool, session)
    response = HTTPResponse(status=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
