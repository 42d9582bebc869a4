"""Failed-login throttling, shared by every query-side process through `login_failures`.

Keyed by (username, client address), never by username alone: a stranger who
guesses wrong slows down only their own attempts at that name, and the real
user, from their own address, logs in at once. After a few free failures each
further attempt must wait a delay that doubles with every failure, up to a cap;
an address that fails for many usernames (password spraying) is slowed the
same way. Refused attempts are not recorded, so waiting always ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from vpsmon.constants import LOGIN_ADDRESS_LOCK_CLASS, LOGIN_PAIR_LOCK_CLASS
from vpsmon.storage.types import Connection

LOGIN_WINDOW = timedelta(minutes=15)
FAILURE_RETENTION = timedelta(days=1)
# Failures of one (username, address) pair before attempts are delayed.
FREE_FAILURES_PER_PAIR = 3
# Failures of one address, over all usernames, before its attempts are delayed.
FREE_FAILURES_PER_ADDRESS = 20
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=5)

CLIENT_ADDRESS_MAX = 100
USERNAME_KEY_MAX = 200


@dataclass(frozen=True)
class Throttle:
    failures: int
    last_failure: datetime | None
    now: datetime


def delay_after(failures: int, free: int) -> timedelta:
    """How long after the latest failure the next attempt may come."""
    if failures < free:
        return timedelta(0)
    doublings = min(failures - free, 30)  # 2**30 s is far past the cap
    return min(MAX_DELAY, FIRST_DELAY * (1 << doublings))


def _wait_seconds(throttle: Throttle, free: int) -> int | None:
    if throttle.last_failure is None or throttle.failures < free:
        return None
    remaining = throttle.last_failure + delay_after(throttle.failures, free) - throttle.now
    if remaining <= timedelta(0):
        return None
    return max(1, math.ceil(remaining.total_seconds()))


async def _throttle(conn: Connection, where: str, *args: str) -> Throttle:
    row = await conn.fetchrow(
        # clock_timestamp(), not now(): this transaction may have waited for
        # the lock while others recorded failures after it began.
        f"SELECT count(*) AS failures, max(failed_at) AS last_failure, clock_timestamp() AS now"
        f" FROM login_failures WHERE {where} AND failed_at > now() - $1::interval",
        LOGIN_WINDOW,
        *args,
    )
    assert row is not None
    return Throttle(row["failures"], row["last_failure"], row["now"])


async def check_and_record_attempt(conn: Connection, username_key: str, client: str) -> int | None:
    """Seconds to wait before this attempt may be made, or None after recording it.

    Call it in a transaction. The attempt counts as a failure until the
    password proves right (`clear_failures`), so concurrent attempts in other
    processes are throttled too.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2)), pg_advisory_xact_lock($3, hashtext($4))",
        LOGIN_PAIR_LOCK_CLASS,
        f"{username_key}\n{client}",
        LOGIN_ADDRESS_LOCK_CLASS,
        client,
    )
    pair = await _throttle(conn, "username = $2 AND client_ip = $3", username_key, client)
    address = await _throttle(conn, "client_ip = $2", client)
    waits = [
        wait
        for wait in (
            _wait_seconds(pair, FREE_FAILURES_PER_PAIR),
            _wait_seconds(address, FREE_FAILURES_PER_ADDRESS),
        )
        if wait is not None
    ]
    if waits:
        return max(waits)
    await conn.execute(
        "INSERT INTO login_failures (username, client_ip, failed_at)"
        " VALUES ($1, $2, clock_timestamp())",
        username_key,
        client,
    )
    await conn.execute(
        "DELETE FROM login_failures WHERE failed_at < now() - $1::interval", FAILURE_RETENTION
    )
    return None


async def clear_failures(conn: Connection, username_key: str, client: str) -> None:
    """After a success: this pair starts afresh (others' failures at the name stay)."""
    await conn.execute(
        "DELETE FROM login_failures WHERE username = $1 AND client_ip = $2", username_key, client
    )
