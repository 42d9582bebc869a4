"""Browser-facing hardening against a real query side: security headers, JSON-only login,
what an anonymous health check learns, proxies believed only when trusted, and event
streams that end once their credential is gone."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest

from query_side.accounts import create_api_token, create_user, remove_user, revoke_api_token
from query_side.accounts import set_password as change_password
from query_side.accounts.throttling import FREE_FAILURES_PER_PAIR
from tests.support.databases import throwaway_database
from tests.support.query_side import Fleet, event_stream, query_side, seed
from vpsmon.constants import SSE_CREDENTIAL_RECHECK_S

API_CSP = "default-src 'none'"


def assert_security_headers(response: httpx.Response) -> str:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.url
    assert headers["referrer-policy"] == "no-referrer", response.url
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy, response.url
    return policy


async def test_every_response_carries_the_security_headers(fleet: Fleet) -> None:
    async with fleet.client() as anonymous, fleet.client("alice") as alice:
        api = [
            await anonymous.get("/api/health"),
            await anonymous.get("/api/vps"),  # 401
            await anonymous.get("/api/openapi.json"),
            await anonymous.get("/api/nothing-here"),  # 404
            await anonymous.delete("/api/vps"),  # 405
            await anonymous.post("/api/auth/login", content=b"x", headers={"content-type": "a/b"}),
            await alice.get(f"/api/vps/{fleet.vps['web-1']}/metrics/timeseries"),
            await alice.get("/api/vps/999999/metrics/latest"),  # 404
        ]
        for response in api:
            assert assert_security_headers(response).startswith(API_CSP), response.url
        async with alice.stream("GET", f"/api/vps/{fleet.vps['web-1']}/metrics/stream") as sse:
            assert sse.status_code == 200
            assert assert_security_headers(sse).startswith(API_CSP)
        if (await anonymous.get("/")).status_code == 200:  # the UI is built
            for path in ("/", "/login", "/vps/1"):
                page = await anonymous.get(path)
                assert page.headers["content-type"].startswith("text/html")
                policy = assert_security_headers(page)
                assert "script-src 'self' 'sha256-" in policy
                assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"username=bob&password=bob-password", "application/x-www-form-urlencoded"),
        (b'{"username": "bob", "password": "bob-password"}', "text/plain"),
        (b'{"username": "bob", "password": "bob-password"}', "multipart/form-data; boundary=x"),
        (b'{"username": "bob", "password": "bob-password"}', None),
    ],
)
async def test_login_takes_only_json(fleet: Fleet, body: bytes, content_type: str | None) -> None:
    """A cross-site form (or a no-preflight fetch) cannot log a visitor in: 415."""
    headers = {"content-type": content_type} if content_type else {}
    async with fleet.client() as client:
        response = await client.post("/api/auth/login", content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "set-cookie" not in response.headers


async def test_login_json_may_name_its_charset(fleet: Fleet) -> None:
    async with fleet.client() as client:
        response = await client.post(
            "/api/auth/login",
            content=b'{"username": "bob", "password": "bob-password"}',
            headers={"content-type": "Application/JSON; charset=utf-8"},
        )
    assert response.status_code == 200, response.text


async def test_anonymous_health_tells_only_ok(fleet: Fleet) -> None:
    async with fleet.client() as anonymous:
        assert (await anonymous.get("/api/health")).json() == {"status": "ok"}
        forged = await anonymous.get("/api/health", headers={"Authorization": "Bearer vpsa_x"})
        assert forged.status_code == 200
        assert forged.json() == {"status": "ok"}
    async with fleet.client("bob") as signed_in:
        body = (await signed_in.get("/api/health")).json()
    assert body["status"] == "ok"
    assert body["backend"] == "postgresql"
    assert body["versions"]["postgresql"]
    assert body["versions"]["vpsmon"]
    assert body["latest_cache"] == "live"


# --- proxies -------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def servers(
    tmp_path_factory: pytest.TempPathFactory, embedded_server_dsn: str, embedded_template: str
) -> AsyncIterator[tuple[str, str, str]]:
    """(dsn, a query side that trusts 127.0.0.1 as its proxy, one that trusts nobody)."""
    async with throwaway_database(embedded_server_dsn, embedded_template) as dsn:
        await seed(dsn)
        logs = tmp_path_factory.mktemp("proxied")
        env = {"VPSMON_TRUSTED_PROXIES": "10.9.0.0/16, 127.0.0.1"}
        async with (
            query_side(dsn, logs / "trusting.log", workers=1, env=env) as trusting,
            query_side(dsn, logs / "plain.log", workers=1) as plain,
        ):
            yield dsn, trusting, plain


async def failure_addresses(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT client_ip FROM login_failures ORDER BY failed_at")
        await conn.execute("DELETE FROM login_failures")
        return [row["client_ip"] for row in rows]
    finally:
        await conn.close()


async def attempt(base_url: str, password: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post(
            "/api/auth/login", json={"username": "alice", "password": password}, headers=headers
        )


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    servers: tuple[str, str, str],
) -> None:
    dsn, trusting, plain = servers
    # The client claims 6.6.6.6; the trusted proxies 10.9.0.5 and 127.0.0.1 saw 203.0.113.9.
    spoofed = {"x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.9.0.5"}
    for _ in range(FREE_FAILURES_PER_PAIR):
        assert (await attempt(trusting, "wrong", spoofed)).status_code == 401
    assert await failure_addresses(dsn) == ["203.0.113.9"] * FREE_FAILURES_PER_PAIR
    # Without trusted proxies the header is anyone's to write: the peer address counts.
    assert (await attempt(plain, "wrong", spoofed)).status_code == 401
    assert await failure_addresses(dsn) == ["127.0.0.1"]


async def test_a_throttled_address_behind_the_proxy_does_not_lock_out_others(
    servers: tuple[str, str, str],
) -> None:
    dsn, trusting, _ = servers
    stranger = {"x-forwarded-for": "203.0.113.9"}
    for _ in range(FREE_FAILURES_PER_PAIR):
        assert (await attempt(trusting, "wrong", stranger)).status_code == 401
    throttled = await attempt(trusting, "alice-password", stranger)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    own = await attempt(trusting, "alice-password", {"x-forwarded-for": "198.51.100.7"})
    assert own.status_code == 200, own.text
    await failure_addresses(dsn)


async def test_cookie_is_secure_when_the_request_came_over_tls(
    servers: tuple[str, str, str],
) -> None:
    _, trusting, plain = servers
    https = {"x-forwarded-proto": "https"}
    cases = [(trusting, https, True), (trusting, {}, False), (plain, https, False)]
    for base_url, headers, secure in cases:
        response = await attempt(base_url, "alice-password", headers)
        assert response.status_code == 200, response.text
        attributes = [a.strip().lower() for a in response.headers["set-cookie"].split(";")]
        assert ("secure" in attributes) is secure, (base_url, headers)


# --- event streams end with their credential --------------------------------------


async def session_cookie(fleet: Fleet, username: str, password: str) -> str:
    async with fleet.client() as client:
        response = await client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        cookie = response.cookies.get("vpsmon_session")
    assert cookie
    return cookie


Ending = Callable[[Fleet, asyncpg.Connection, str, str], Awaitable[None]]


async def by_logout(fleet: Fleet, conn: asyncpg.Connection, username: str, cookie: str) -> None:
    async with httpx.AsyncClient(
        base_url=fleet.base_url, cookies={"vpsmon_session": cookie}
    ) as client:
        assert (await client.post("/api/auth/logout")).status_code == 204


async def by_password_change(
    fleet: Fleet, conn: asyncpg.Connection, username: str, cookie: str
) -> None:
    assert await change_password(conn, username, "a brand-new password") == 1


async def by_user_removal(
    fleet: Fleet, conn: asyncpg.Connection, username: str, cookie: str
) -> None:
    await remove_user(conn, username)


@pytest.mark.parametrize("ending", [by_logout, by_password_change, by_user_removal])
async def test_session_stream_ends_within_seconds(fleet: Fleet, ending: Ending) -> None:
    username = f"viewer-{ending.__name__.replace('_', '-')}"
    conn = await asyncpg.connect(fleet.dsn)
    try:
        await create_user(conn, username, "viewer-password", admin=True)
        cookie = await session_cookie(fleet, username, "viewer-password")
        path = f"/api/vps/{fleet.vps['web-1']}/metrics/stream"
        async with (
            httpx.AsyncClient(base_url=fleet.base_url, cookies={"vpsmon_session": cookie}) as c,
            event_stream(c, path) as events,
        ):
            await ending(fleet, conn, username, cookie)
            started = time.monotonic()
            await events.end(timeout=10 * SSE_CREDENTIAL_RECHECK_S)
            assert time.monotonic() - started <= 4 * SSE_CREDENTIAL_RECHECK_S
        async with httpx.AsyncClient(
            base_url=fleet.base_url, cookies={"vpsmon_session": cookie}
        ) as client:
            assert (await client.get(path)).status_code == 401
    finally:
        await conn.execute("DELETE FROM users WHERE username = $1", username)
        await conn.close()


async def test_api_token_stream_ends_within_seconds_of_revocation(fleet: Fleet) -> None:
    conn = await asyncpg.connect(fleet.dsn)
    try:
        token = await create_api_token(conn, "alice", "dashboard-on-a-wall")
        headers = {"Authorization": f"Bearer {token}"}
        path = f"/api/vps/{fleet.vps['web-1']}/metrics/stream"
        async with (
            httpx.AsyncClient(base_url=fleet.base_url, headers=headers) as client,
            event_stream(client, path) as events,
        ):
            assert await revoke_api_token(conn, token)
            started = time.monotonic()
            await events.end(timeout=10 * SSE_CREDENTIAL_RECHECK_S)
            assert time.monotonic() - started <= 4 * SSE_CREDENTIAL_RECHECK_S
    finally:
        await conn.close()
