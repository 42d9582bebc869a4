"""Which storage backend a database offers: TimescaleDB (timescale licence) or plain PostgreSQL."""

from __future__ import annotations

import enum
import logging

from vpsmon.settings import BackendChoice
from vpsmon.storage.types import Connection

logger = logging.getLogger(__name__)


class Backend(enum.StrEnum):
    TIMESCALEDB = "timescaledb"
    POSTGRESQL = "postgresql"


class BackendUnavailableError(RuntimeError):
    """TimescaleDB was asked for but the server cannot provide it."""


async def detect_backend(conn: Connection, choice: BackendChoice = "auto") -> Backend:
    """Enable TimescaleDB where the server preloads it with the timescale licence.

    The Apache-only build lacks continuous aggregates and compression, so it
    counts as plain PostgreSQL.
    """
    if choice == "postgresql":
        return Backend.POSTGRESQL
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    reason = "the timescaledb extension is not installed on the server"
    if available:
        preloaded = await conn.fetchval(
            "SELECT 'timescaledb' = ANY(string_to_array("
            "replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
        )
        licence = await conn.fetchval("SELECT current_setting('timescaledb.license', true)")
        if not preloaded:
            reason = "timescaledb is not in shared_preload_libraries"
        elif licence != "timescale":
            reason = f"timescaledb.license is {licence!r}, not 'timescale'"
        else:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return Backend.TIMESCALEDB
    if choice == "timescaledb":
        raise BackendUnavailableError(f"VPSMON_BACKEND=timescaledb, but {reason}")
    logger.info("using plain PostgreSQL: %s", reason)
    return Backend.POSTGRESQL


async def recorded_backend(conn: Connection) -> Backend | None:
    """The backend the schema was migrated for, or None before the first migration."""
    exists = await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    if not exists:
        return None
    value = await conn.fetchval("SELECT backend FROM schema_migrations ORDER BY version LIMIT 1")
    return Backend(value) if value is not None else None
