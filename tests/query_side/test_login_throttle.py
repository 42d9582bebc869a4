"""Failed-login throttling against a real database: by (username, address), with delays
that double, so that a stranger's failures never lock the real user out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from query_side.accounts import (
    INVALID_CREDENTIALS,
    TOO_MANY_FAILURES,
    create_user,
    login,
    prune_expired,
)
from query_side.accounts import passwords as password_module
from query_side.accounts.throttling import (
    FIRST_DELAY,
    FREE_FAILURES_PER_ADDRESS,
    FREE_FAILURES_PER_PAIR,
    MAX_DELAY,
    delay_after,
)
from vpsmon.errors import LoginRefused

PASSWORD = "correct horse battery"


async def fail(conn: asyncpg.Connection, username: str, client_ip: str, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(LoginRefused) as refused:
            await login(conn, username, "wrong password", client_ip)
        assert refused.value.reason == INVALID_CREDENTIALS
        assert refused.value.retry_after_seconds is None


async def refused_for(conn: asyncpg.Connection, username: str, client_ip: str) -> int:
    """The Retry-After of an attempt that must be throttled (even with the right password)."""
    with pytest.raises(LoginRefused) as refused:
        await login(conn, username, PASSWORD, client_ip)
    assert refused.value.reason == TOO_MANY_FAILURES
    retry = refused.value.retry_after_seconds
    assert retry is not None
    return retry


async def age_failures(conn: asyncpg.Connection, by: timedelta) -> None:
    """Move every recorded failure into the past: the wait is over without sleeping."""
    await conn.execute("UPDATE login_failures SET failed_at = failed_at - $1::interval", by)


async def count(conn: asyncpg.Connection) -> int:
    total: int = await conn.fetchval("SELECT count(*) FROM login_failures")
    return total


def test_delays_double_from_the_first_up_to_the_cap() -> None:
    free = FREE_FAILURES_PER_PAIR
    assert [delay_after(n, free) for n in range(free)] == [timedelta(0)] * free
    assert delay_after(free, free) == FIRST_DELAY
    assert delay_after(free + 1, free) == 2 * FIRST_DELAY
    assert delay_after(free + 2, free) == 4 * FIRST_DELAY
    assert delay_after(free + 1000, free) == MAX_DELAY


async def test_a_stranger_cannot_lock_the_real_user_out(conn: asyncpg.Connection) -> None:
    """Fails on the old per-username lock: 5 failures from anywhere locked alice out."""
    await create_user(conn, "alice", PASSWORD)
    guesses = 0
    while guesses < 10:  # well past any per-username limit, all within the window
        try:
            await login(conn, "alice", "wrong password", "203.0.113.9")
        except LoginRefused as refused:
            if refused.retry_after_seconds is not None:
                # The stranger waits out exactly the delay they were given.
                await age_failures(conn, timedelta(seconds=refused.retry_after_seconds))
                continue
            guesses += 1
    assert await refused_for(conn, "ALICE", "203.0.113.9") > 0  # the stranger must wait
    window = await conn.fetchval(
        "SELECT count(*) FROM login_failures WHERE failed_at > now() - interval '15 minutes'"
    )
    assert window == 10
    # From her own address alice logs in at once, with no delay to wait.
    user, _ = await login(conn, "alice", PASSWORD, "198.51.100.7")
    assert user.username == "alice"


async def test_each_failure_beyond_the_free_ones_doubles_the_wait(
    conn: asyncpg.Connection,
) -> None:
    await create_user(conn, "alice", PASSWORD)
    await fail(conn, "alice", "10.0.0.1", FREE_FAILURES_PER_PAIR)
    first = FIRST_DELAY.total_seconds()
    waits = []
    for _ in range(4):
        wait = await refused_for(conn, "alice", "10.0.0.1")
        waits.append(wait)
        # Refused attempts are not recorded: the wait does not extend itself.
        before = await count(conn)
        await refused_for(conn, "alice", "10.0.0.1")
        assert await count(conn) == before
        await age_failures(conn, timedelta(seconds=wait))
        await fail(conn, "alice", "10.0.0.1")
    assert waits == [first, 2 * first, 4 * first, 8 * first]
    # Once the wait is over, the right password still works, and clears the pair.
    await age_failures(conn, MAX_DELAY)
    user, _ = await login(conn, "alice", PASSWORD, "10.0.0.1")
    assert user.username == "alice"
    assert await count(conn) == 0


async def test_the_wait_never_exceeds_the_cap(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    await conn.execute(
        "INSERT INTO login_failures (username, client_ip, failed_at)"
        " SELECT 'alice', '10.0.0.1', now() - interval '1 second' * g"
        " FROM generate_series(1, 200) g"
    )
    wait = await refused_for(conn, "alice", "10.0.0.1")
    assert MAX_DELAY.total_seconds() - 5 <= wait <= MAX_DELAY.total_seconds()


async def test_one_address_failing_for_many_names_is_slowed(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    for i in range(FREE_FAILURES_PER_ADDRESS):
        await fail(conn, f"guess{i}", "192.0.2.7")
    assert await refused_for(conn, "alice", "192.0.2.7") > 0
    # alice herself has no failures: from elsewhere she logs in.
    user, _ = await login(conn, "alice", PASSWORD, "192.0.2.8")
    assert user.username == "alice"


async def test_success_clears_only_that_pairs_failures(conn: asyncpg.Connection) -> None:
    await create_user(conn, "alice", PASSWORD)
    await fail(conn, "alice", "10.0.0.1", FREE_FAILURES_PER_PAIR - 1)
    await fail(conn, "alice", "203.0.113.9", FREE_FAILURES_PER_PAIR)
    await login(conn, "Alice", PASSWORD, "10.0.0.1")
    rows = await conn.fetch("SELECT DISTINCT client_ip FROM login_failures")
    assert [r["client_ip"] for r in rows] == ["203.0.113.9"]
    # A fresh budget for alice at her address.
    await fail(conn, "alice", "10.0.0.1", FREE_FAILURES_PER_PAIR - 1)
    await login(conn, "alice", PASSWORD, "10.0.0.1")


async def test_the_limit_holds_for_concurrent_attempts_on_many_connections(
    conn: asyncpg.Connection, embedded_migrated_database: str
) -> None:
    await create_user(conn, "alice", PASSWORD)
    others = [await asyncpg.connect(embedded_migrated_database) for _ in range(10)]

    async def attempt(other: asyncpg.Connection) -> str:
        try:
            await login(other, "alice", "wrong password", "10.0.0.1")
        except LoginRefused as refused:
            return refused.reason
        return "logged in"

    try:
        reasons = await asyncio.gather(*(attempt(other) for other in others))
    finally:
        await asyncio.gather(*(other.close() for other in others))
    # Each attempt counts before its (slow) password check; the next one must wait
    # FIRST_DELAY after it, far longer than these ten take to arrive.
    free = FREE_FAILURES_PER_PAIR
    assert sorted(reasons) == [INVALID_CREDENTIALS] * free + [TOO_MANY_FAILURES] * (10 - free)
    assert await count(conn) == free


async def test_unknown_users_cost_a_password_hash_too(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = password_module.verify_password

    def counting(password: str, encoded: str) -> bool:
        calls.append(encoded)
        return real(password, encoded)

    monkeypatch.setattr(password_module, "verify_password", counting)
    await fail(conn, "nobody", "10.0.0.1")
    assert len(calls) == 1
    assert calls[0].startswith("scrypt$")


async def test_old_failures_are_pruned(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO login_failures (username, client_ip, failed_at)"
        " VALUES ('old', '10.0.0.1', now() - interval '25 hours'),"
        " ('recent', '10.0.0.1', now() - interval '23 hours')"
    )
    await fail(conn, "someone", "10.0.0.2")
    names = {r["username"] for r in await conn.fetch("SELECT username FROM login_failures")}
    assert names == {"recent", "someone"}

    await conn.execute("UPDATE login_failures SET failed_at = now() - interval '2 days'")
    await create_user(conn, "alice", PASSWORD)
    await login(conn, "alice", PASSWORD, "10.0.0.3")
    await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    await prune_expired(conn)
    assert await conn.fetchval("SELECT count(*) FROM login_failures") == 0
    assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
