"""Which storage backend a database offers: TimescaleDB (timescale licence) or plain PostgreSQL."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import asyncpg

from vpsmon.errors import BackendUnavailableError
from vpsmon.settings import BackendChoice
from vpsmon.storage.types import Connection

logger = logging.getLogger(__name__)


class Backend(enum.StrEnum):
    TIMESCALEDB = "timescaledb"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class BackendDecision:
    """The backend a database uses, why, and anything the operator should know."""

    backend: Backend
    reason: str
    warning: str | None = None


@dataclass(frozen=True)
class _ServerOffer:
    installed: str | None  # the version this database has created, if any
    available: bool
    preloaded: bool | None  # None: this role may not read shared_preload_libraries


async def _offer(conn: Connection) -> _ServerOffer:
    row = await conn.fetchrow(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available"
    )
    assert row is not None
    preloaded: bool | None
    try:
        preloaded = await conn.fetchval(
            "SELECT 'timescaledb' = ANY(string_to_array("
            "replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
        )
    except asyncpg.InsufficientPrivilegeError:
        preloaded = None
    return _ServerOffer(row["installed"], row["available"], preloaded)


def _create_statement(database: str) -> str:
    return f'CREATE EXTENSION timescaledb; (as a superuser, in database "{database}")'


async def detect_backend(conn: Connection, choice: BackendChoice = "auto") -> BackendDecision:
    """Use TimescaleDB wherever the server preloads it with the timescale licence.

    The licence setting is only readable once the extension exists in the
    database, so a brand-new database gets the extension created first, and
    dropped again if the build turns out to be Apache-only (no continuous
    aggregates or compression: that counts as plain PostgreSQL).
    """
    offer = await _offer(conn)
    if choice == "postgresql":
        warning = None
        if offer.available and offer.preloaded is not False:
            warning = (
                "this server offers TimescaleDB, but the database uses plain PostgreSQL "
                "(VPSMON_BACKEND=postgresql, or migrated before TimescaleDB was there); "
                "vpsmon does not convert a database in place: see docs/TIMESCALEDB.md"
            )
        return BackendDecision(Backend.POSTGRESQL, "plain PostgreSQL was chosen", warning)
    reason = None
    if not offer.available:
        reason = "the timescaledb extension is not installed on the server"
    elif offer.preloaded is False:
        reason = "timescaledb is not in shared_preload_libraries"
    if reason is not None:
        if choice == "timescaledb":
            raise BackendUnavailableError(f"VPSMON_BACKEND=timescaledb, but {reason}")
        return BackendDecision(Backend.POSTGRESQL, reason)
    database: str = await conn.fetchval("SELECT current_database()")
    created = False
    if offer.installed is None:
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except asyncpg.InsufficientPrivilegeError:
            raise BackendUnavailableError(
                "the server offers TimescaleDB but this role may not create the extension "
                f"(it needs CREATE on the database): run {_create_statement(database)} "
                "and migrate again, or set VPSMON_BACKEND=postgresql to use plain "
                "PostgreSQL on purpose"
            ) from None
        created = True
    licence = await conn.fetchval("SELECT current_setting('timescaledb.license', true)")
    version = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    if licence != "timescale":
        if created:
            await conn.execute("DROP EXTENSION timescaledb")
        reason = f"timescaledb {version} has the {licence!r} licence, not 'timescale'"
        if choice == "timescaledb":
            raise BackendUnavailableError(f"VPSMON_BACKEND=timescaledb, but {reason}")
        return BackendDecision(Backend.POSTGRESQL, reason)
    return BackendDecision(
        Backend.TIMESCALEDB,
        f"timescaledb {version} with the timescale licence is preloaded"
        + ("; created the extension" if created else ""),
    )


async def recorded_backend(conn: Connection) -> Backend | None:
    """The backend the schema was migrated for, or None before the first migration."""
    exists = await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    if not exists:
        return None
    value = await conn.fetchval("SELECT backend FROM schema_migrations ORDER BY version LIMIT 1")
    return Backend(value) if value is not None else None
