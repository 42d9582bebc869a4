"""Two commands on one VPS that read the same version: the second append fails with
ConcurrencyError, and the retrying handler lands both. Two real connections, both
backends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest

from command_side.vps_commands import (
    COMMAND_ATTEMPTS,
    Decide,
    hash_agent_token,
    new_agent_token,
    register_vps,
    rotate_agent_token,
    rotation,
    run_vps_command,
    vps_for_token,
)
from command_side.vps_stream import NewVpsEvent, VpsState, load_vps
from tests.databases import StorageServer
from vpsmon.errors import ConcurrencyError
from vpsmon.settings import Settings
from vpsmon.storage.event_log import StoredVpsEvent, append_vps_event
from vpsmon.storage.schema import upgrade_schema


@dataclass(frozen=True)
class Racers:
    first: asyncpg.Connection
    second: asyncpg.Connection
    vps_id: int


@pytest.fixture
async def racers(storage_server: StorageServer, fresh_database: str) -> AsyncIterator[Racers]:
    """Two connections to a migrated database with one VPS (at version 1)."""
    first = await asyncpg.connect(fresh_database)
    second = await asyncpg.connect(fresh_database)
    try:
        await upgrade_schema(first, Settings(backend=storage_server.backend))
        vps_id = (await register_vps(first, "web-1")).vps_id
        yield Racers(first, second, vps_id)
    finally:
        await first.close()
        await second.close()


def after_both_loaded(decide: Decide, barrier: asyncio.Barrier) -> Decide:
    """``decide``, whose first call waits until the other racer has loaded the VPS too:
    both then decide on the same version."""
    waited = False

    async def decide_together(state: VpsState) -> NewVpsEvent | None:
        nonlocal waited
        if not waited:
            waited = True
            await barrier.wait()
        return await decide(state)

    return decide_together


async def versions(conn: asyncpg.Connection, vps_id: int) -> list[tuple[int, str, str | None]]:
    """(version, event type, token hash) of every event of the VPS."""
    rows = await conn.fetch(
        "SELECT version, event_type, payload ->> 'token_sha256' AS token FROM vps_events"
        " WHERE vps_id = $1 ORDER BY version",
        vps_id,
    )
    return [(r["version"], r["event_type"], r["token"]) for r in rows]


async def active_tokens(conn: asyncpg.Connection, vps_id: int) -> list[bytes]:
    rows = await conn.fetch(
        "SELECT token_sha256 FROM agent_tokens WHERE vps_id = $1 AND revoked_at IS NULL", vps_id
    )
    return [r["token_sha256"] for r in rows]


async def race(racers: Racers, tokens: list[str], attempts: int) -> list[object]:
    """Both connections rotate to their token, deciding on the same version."""
    barrier = asyncio.Barrier(2)
    return await asyncio.gather(
        *(
            run_vps_command(
                conn, racers.vps_id, after_both_loaded(rotation(token), barrier), attempts=attempts
            )
            for conn, token in zip((racers.first, racers.second), tokens, strict=True)
        ),
        return_exceptions=True,
    )


async def test_the_second_rotation_at_one_version_fails_without_retry(racers: Racers) -> None:
    tokens = [new_agent_token(), new_agent_token()]

    results = await race(racers, tokens, attempts=1)

    won = [i for i, r in enumerate(results) if isinstance(r, StoredVpsEvent)]
    lost = [i for i, r in enumerate(results) if isinstance(r, ConcurrencyError)]
    assert (len(won), len(lost)) == (1, 1), results
    winner, loser = tokens[won[0]], tokens[lost[0]]
    error = results[lost[0]]
    assert isinstance(error, ConcurrencyError)
    assert f"VPS {racers.vps_id} was changed by another command" in str(error)
    assert "run it again" in str(error)
    # Storage translated the unique violation on (vps_id, version), chained.
    assert isinstance(error.__cause__, ConcurrencyError)
    assert isinstance(error.__cause__.__cause__, asyncpg.UniqueViolationError)
    events = await versions(racers.first, racers.vps_id)
    assert [v[:2] for v in events] == [(1, "registered"), (2, "token_rotated")]
    assert events[1][2] == hash_agent_token(winner).hex()
    assert await vps_for_token(racers.first, winner) == racers.vps_id
    assert await vps_for_token(racers.first, loser) is None
    assert await active_tokens(racers.first, racers.vps_id) == [hash_agent_token(winner)]
    # The loser's transaction was rolled back: its connection goes on.
    assert (await load_vps(racers.second, racers.vps_id)).version == 2
    assert not racers.second.is_in_transaction()


async def test_the_retrying_handler_lands_both_rotations(
    racers: Racers, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = [new_agent_token(), new_agent_token()]

    with caplog.at_level(logging.INFO, logger="command_side.vps_commands"):
        results = await race(racers, tokens, attempts=COMMAND_ATTEMPTS)

    # One of them lost the race once, reloaded, and decided again.
    assert caplog.text.count(f"VPS {racers.vps_id} changed concurrently; deciding again") == 1

    landed = sorted(
        (r.version, token)
        for r, token in zip(results, tokens, strict=True)
        if isinstance(r, StoredVpsEvent)
    )
    assert len(landed) == 2, results
    assert [version for version, _ in landed] == [2, 3]
    last = landed[-1][1]
    assert [v[:2] for v in await versions(racers.first, racers.vps_id)] == [
        (1, "registered"),
        (2, "token_rotated"),
        (3, "token_rotated"),
    ]
    assert await active_tokens(racers.first, racers.vps_id) == [hash_agent_token(last)]
    assert await vps_for_token(racers.first, last) == racers.vps_id
    assert await vps_for_token(racers.first, landed[0][1]) is None


async def test_a_command_overtaken_on_every_attempt_gives_up(racers: Racers) -> None:
    attempts = 0

    async def overtaken(state: VpsState) -> NewVpsEvent | None:
        """Each time, another command commits the next version before this one appends."""
        nonlocal attempts
        attempts += 1
        await rotate_agent_token(racers.second, racers.vps_id)
        return await rotation(new_agent_token())(state)

    with pytest.raises(ConcurrencyError, match=f"{COMMAND_ATTEMPTS} attempts"):
        await run_vps_command(racers.first, racers.vps_id, overtaken)

    assert attempts == COMMAND_ATTEMPTS
    # Only the competitor's rotations landed, one version each.
    events = await versions(racers.first, racers.vps_id)
    assert [v[0] for v in events] == list(range(1, COMMAND_ATTEMPTS + 2))
    assert len(await active_tokens(racers.first, racers.vps_id)) == 1


async def test_storage_refuses_a_taken_version(racers: Racers) -> None:
    with pytest.raises(ConcurrencyError, match="already has an event at version 1"):
        async with racers.first.transaction():
            await append_vps_event(racers.first, racers.vps_id, 1, "renamed", {"name": "x"})
    assert len(await versions(racers.first, racers.vps_id)) == 1


def test_a_stream_must_be_folded_in_order() -> None:
    skipping = StoredVpsEvent(1, 7, 2, "renamed", {"name": "x"}, datetime.now(UTC))
    with pytest.raises(ValueError, match="version 2 of VPS 7, not version 1 of VPS 7"):
        VpsState(7).mutate(skipping)
