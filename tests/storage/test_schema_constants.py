"""vpsmon/constants.py and the frozen SQL migrations state the same rules.

Applied migrations cannot change, so their CHECK constraints and the lock key
in a trigger repeat values of vpsmon/constants.py. These tests ask a migrated
database what it accepts, at each bound and just past it, on every backend.
"""

from __future__ import annotations

import asyncpg
import pytest

from projections.vps_registry import PAYLOAD_KEYS
from tests.support.rollups import Store
from vpsmon import constants
from vpsmon.storage.migrations import migrations_dir


@pytest.fixture
def conn(store: Store) -> asyncpg.Connection:
    """A connection to a migrated database, on every backend."""
    return store.conn


async def _accepted(conn: asyncpg.Connection, sql: str, *args: object) -> bool:
    """Whether the database takes the statement; nothing of it is kept."""
    try:
        async with conn.transaction():
            await conn.execute(sql, *args)
            raise _RolledBack
    except _RolledBack:
        return True
    except asyncpg.CheckViolationError:
        return False


class _RolledBack(Exception):
    pass


_AGENT_CONFIG = (
    "WITH v AS (INSERT INTO vps (id, name, created_at, updated_at)"
    " VALUES (1, 'probe', now(), now()) RETURNING id)"
    " INSERT INTO vps_agent_config (vps_id, {column}) SELECT id, $1 FROM v"
)


@pytest.mark.parametrize(
    ("column", "lowest", "highest"),
    [
        (
            "collect_interval_seconds",
            constants.COLLECT_INTERVAL_MIN_S,
            constants.COLLECT_INTERVAL_MAX_S,
        ),
        (
            "upload_interval_seconds",
            constants.UPLOAD_INTERVAL_MIN_S,
            constants.UPLOAD_INTERVAL_MAX_S,
        ),
        ("upload_batch_max_size", constants.BATCH_SIZE_MIN, constants.BATCH_SIZE_MAX),
    ],
)
async def test_agent_config_bounds_are_the_database_checks(
    conn: asyncpg.Connection, column: str, lowest: int, highest: int
) -> None:
    sql = _AGENT_CONFIG.format(column=column)
    assert await _accepted(conn, sql, lowest)
    assert await _accepted(conn, sql, highest)
    assert not await _accepted(conn, sql, lowest - 1)
    assert not await _accepted(conn, sql, highest + 1)


async def test_username_rule_is_the_database_check(conn: asyncpg.Connection) -> None:
    sql = "INSERT INTO users (username, password_hash) VALUES ($1, 'x')"
    longest = "a" * constants.USERNAME_MAX_CHARS
    assert await _accepted(conn, sql, longest)
    assert await _accepted(conn, sql, "A-z_0.9@x")
    assert not await _accepted(conn, sql, longest + "a")
    assert not await _accepted(conn, sql, "")
    assert not await _accepted(conn, sql, "no spaces")


async def test_vps_name_limit_is_the_database_check(conn: asyncpg.Connection) -> None:
    sql = "INSERT INTO vps (id, name, created_at, updated_at) VALUES (1, $1, now(), now())"
    assert await _accepted(conn, sql, "n" * constants.VPS_NAME_MAX_CHARS)
    assert not await _accepted(conn, sql, "n" * (constants.VPS_NAME_MAX_CHARS + 1))


async def test_vps_event_types_are_the_database_check(conn: asyncpg.Connection) -> None:
    sql = "INSERT INTO vps_events (vps_id, version, event_type) VALUES (1, 1, $1)"
    for event_type in constants.VPS_EVENT_TYPES:
        assert await _accepted(conn, sql, event_type), event_type
    assert not await _accepted(conn, sql, "renamed_twice")


def test_every_event_type_has_a_registry_handler() -> None:
    assert set(PAYLOAD_KEYS) == set(constants.VPS_EVENT_TYPES)


def test_late_row_trigger_takes_the_threshold_lock_key() -> None:
    trigger = (migrations_dir() / "0002_rollups.postgresql.sql").read_text()
    assert f"pg_advisory_xact_lock_shared({constants.ROLLUP_THRESHOLD_LOCK_KEY})" in trigger


def test_advisory_lock_keys_are_distinct() -> None:
    keys = {
        name: value
        for name, value in vars(constants).items()
        if name.endswith(("_LOCK_KEY", "_LOCK_CLASS"))
    }
    assert len(keys) >= 6
    assert len(set(keys.values())) == len(keys), keys
