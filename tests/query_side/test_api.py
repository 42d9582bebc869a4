"""The HTTP contract against a real query side (two Sanic workers) and a real database:
every route's success shape, its error paths, access control, and freshness."""

from __future__ import annotations

import time

import asyncpg
import httpx
import pytest

from command_side.vps_commands import decommission_vps
from query_side.accounts import revoke_api_token
from query_side.accounts.throttling import FREE_FAILURES_PER_PAIR
from tests.support.query_side import Fleet, event_stream
from tests.support.synthetic_agent import snapshot
from vpsmon.metrics import METRIC_COLUMNS, METRICS

LATEST_KEYS = set(METRIC_COLUMNS)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_health_needs_no_credentials(fleet: Fleet) -> None:
    async with fleet.client() as client:
        response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # the details are for signed-in callers
    async with fleet.client("alice") as client:
        response = await client.get("/api/health")
    body = response.json()
    assert body["status"] == "ok"
    assert body["backend"] == "postgresql"
    assert body["versions"]["postgresql"]
    assert body["latest_cache"] == "live"


@pytest.mark.parametrize(
    "path",
    [
        "/api/vps",
        "/api/vps/1/metrics/latest",
        "/api/vps/1/metrics/timeseries",
        "/api/vps/1/metrics/stream",
    ],
)
async def test_every_api_route_needs_credentials(fleet: Fleet, path: str) -> None:
    async with fleet.client() as client:
        assert_error(await client.get(path), 401, "unauthorized")
        bad = await client.get(path, headers={"Authorization": "Bearer vpsa_forged"})
        assert_error(bad, 401, "unauthorized")
        assert_error(
            await client.get(path, headers={"Authorization": "Basic x"}), 401, "unauthorized"
        )
        assert_error(
            await client.get(path, cookies={"vpsmon_session": "vpss_x"}), 401, "unauthorized"
        )


async def test_vps_list_is_per_owner_and_admins_see_all(fleet: Fleet) -> None:
    for user, expected in (
        ("alice", {"web-1", "web-2"}),
        ("bob", {"db-1"}),
        ("root", {"web-1", "web-2", "db-1"}),
    ):
        async with fleet.client(user) as client:
            response = await client.get("/api/vps")
        assert response.status_code == 200
        items = response.json()
        assert {item["name"] for item in items} == expected
        for item in items:
            assert set(item) == {"id", "name", "created_at", "online", "last_seen", "latest"}
            assert item["created_at"].endswith("Z")


async def test_latest_and_stream_follow_each_commit_within_a_second(fleet: Fleet) -> None:
    vps_id = fleet.vps["web-1"]
    path = f"/api/vps/{vps_id}/metrics"
    async with fleet.client("alice") as client, event_stream(client, f"{path}/stream") as events:
        for round_ in range(3):
            moment = time.time_ns() // 1_000_000
            cpu = 10.0 + round_
            await fleet.ingest("web-1", [snapshot(moment - 500), snapshot(moment, cpu=cpu)])
            acked = time.monotonic()
            event = await events.next(timeout=5)
            while event["time"] != _iso(moment):  # skip the value current at connect
                event = await events.next(timeout=5)
            assert time.monotonic() - acked < 1.0
            assert set(event) == LATEST_KEYS
            assert event["cpu_usage_percent"] == cpu
            # Both workers answer with it: several fresh connections.
            for _ in range(6):
                async with fleet.client("alice") as fresh:
                    latest = (await fresh.get(f"{path}/latest")).json()
                assert latest == event
            assert time.monotonic() - acked < 1.0


def _iso(unix_ms: int) -> str:
    from datetime import UTC, datetime, timedelta

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=unix_ms)
    return moment.isoformat().replace("+00:00", "Z")


async def test_other_users_vps_is_a_404_on_every_route(fleet: Fleet) -> None:
    theirs = fleet.vps["db-1"]
    async with fleet.client("alice") as client:
        for suffix in ("latest", "timeseries", "stream"):
            response = await client.get(f"/api/vps/{theirs}/metrics/{suffix}")
            assert_error(response, 404, "not_found")
            unknown = await client.get(f"/api/vps/999999/metrics/{suffix}")
            assert_error(unknown, 404, "not_found")
            assert response.json()["error"]["message"].replace(str(theirs), "X") == unknown.json()[
                "error"
            ]["message"].replace("999999", "X")
    async with fleet.client("root") as client:
        await fleet.ingest("db-1", [snapshot()])
        assert (await client.get(f"/api/vps/{theirs}/metrics/latest")).status_code == 200


async def test_latest_without_data_is_a_404(fleet: Fleet) -> None:
    async with fleet.client("alice") as client:
        response = await client.get(f"/api/vps/{fleet.vps['web-2']}/metrics/latest")
    assert_error(response, 404, "not_found")


async def test_timeseries_shape_and_parameters(fleet: Fleet) -> None:
    vps_id = fleet.vps["web-1"]
    now = time.time_ns() // 1_000_000
    await fleet.ingest("web-1", [snapshot(now - 90_000 + i * 1000) for i in range(60)])
    async with fleet.client("alice") as client:
        response = await client.get(f"/api/vps/{vps_id}/metrics/timeseries")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"vps_id", "interval", "source", "start_time", "end_time", "points"}
        assert (body["vps_id"], body["interval"], body["source"]) == (
            vps_id,
            "1m",
            "performance_metrics_1m",
        )
        assert body["points"]
        expected = {"time", "samples"} | {
            f"{m}_{s}" for m in METRICS for s in ("avg", "min", "max")
        }
        for point in body["points"]:
            assert set(point) == expected
        times = [p["time"] for p in body["points"]]
        assert times == sorted(times)
        assert sum(p["samples"] for p in body["points"]) >= 60

        unix = await client.get(
            f"/api/vps/{vps_id}/metrics/timeseries",
            params={
                "start_time": str(now // 1000 - 3600),
                "end_time": str(now // 1000 + 1),
                "interval": "15m",
            },
        )
        assert unix.status_code == 200
        assert unix.json()["source"] == "performance_metrics_5m"

        for params in (
            {"interval": "7x"},
            {"interval": "90s"},
            {"start_time": "yesterday"},
            {"start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"},
            {"start_time": "2026-01-01T00:00:00", "end_time": "2026-01-02T00:00:00Z"},
            {"start_time": "2000-01-01T00:00:00Z", "interval": "1m"},
            {"start_time": "-5"},
            {"end_time": "1e30"},
        ):
            bad = await client.get(f"/api/vps/{vps_id}/metrics/timeseries", params=params)
            assert_error(bad, 400, "invalid_parameter")


async def test_login_sets_an_httponly_session_cookie_and_logout_ends_it(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.base_url) as browser:
        response = await browser.post(
            "/api/auth/login", json={"username": "bob", "password": fleet.passwords["bob"]}
        )
        assert response.status_code == 200
        assert response.json() == {"username": "bob", "is_admin": False}
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "max-age=" in cookie
        listing = await browser.get("/api/vps")
        assert [v["name"] for v in listing.json()] == ["db-1"]
        assert (await browser.post("/api/auth/logout")).status_code == 204
        assert_error(await browser.get("/api/vps"), 401, "unauthorized")


async def test_login_errors(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.base_url) as client:
        wrong = await client.post("/api/auth/login", json={"username": "alice", "password": "nope"})
        assert_error(wrong, 401, "invalid_credentials")
        for body in (b"", b"{", b'{"username": "alice"}', b'{"username": 5, "password": []}'):
            bad = await client.post(
                "/api/auth/login", content=body, headers={"content-type": "application/json"}
            )
            assert_error(bad, 422, "invalid_body")


async def test_repeated_failed_logins_are_refused(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.base_url) as client:
        statuses = []
        for _ in range(7):
            response = await client.post(
                "/api/auth/login", json={"username": "root", "password": "guessing"}
            )
            statuses.append(response.status_code)
        free = FREE_FAILURES_PER_PAIR
        assert statuses[:free] == [401] * free
        assert statuses[free:] == [429] * (7 - free)
        assert int(response.headers["retry-after"]) > 0
        right = await client.post(
            "/api/auth/login", json={"username": "root", "password": fleet.passwords["root"]}
        )
        assert_error(right, 429, "too_many_attempts")


async def test_revoked_api_token_stops_working(fleet: Fleet) -> None:
    conn = await asyncpg.connect(fleet.dsn)
    try:
        from query_side.accounts import create_api_token

        token = await create_api_token(conn, "alice", "short-lived")
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=fleet.base_url, headers=headers) as client:
            assert (await client.get("/api/vps")).status_code == 200
            assert await revoke_api_token(conn, token)
            assert_error(await client.get("/api/vps"), 401, "unauthorized")
    finally:
        await conn.close()


async def test_sse_viewer_that_goes_away_is_cleaned_up(fleet: Fleet) -> None:
    vps_id = fleet.vps["web-1"]
    async with fleet.client("alice") as client:
        for _ in range(3):
            async with event_stream(client, f"/api/vps/{vps_id}/metrics/stream") as events:
                await fleet.ingest("web-1", [snapshot()])
                await events.next()
        # The server keeps serving new streams and requests after viewers vanish.
        assert (await client.get(f"/api/vps/{vps_id}/metrics/latest")).status_code == 200


async def test_removed_vps_disappears(fleet: Fleet) -> None:
    conn = await asyncpg.connect(fleet.dsn)
    try:
        from command_side.vps_commands import register_vps
        from query_side.accounts import find_user

        alice = await find_user(conn, "alice")
        assert alice is not None
        issued = await register_vps(conn, "temp", owner_id=alice.id)
        async with fleet.client("alice") as client:
            assert any(v["id"] == issued.vps_id for v in (await client.get("/api/vps")).json())
            await decommission_vps(conn, issued.vps_id)
            assert all(v["id"] != issued.vps_id for v in (await client.get("/api/vps")).json())
            response = await client.get(f"/api/vps/{issued.vps_id}/metrics/timeseries")
            assert_error(response, 404, "not_found")
    finally:
        await conn.close()
