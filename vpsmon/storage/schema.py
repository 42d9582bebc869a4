"""Everything a process does before it uses the database: migrations, then policies.

The schema owner migrates; a server connected with a narrower role (vpsmon_ingest,
vpsmon_query) may not, so it only checks that the owner already did.
"""

from __future__ import annotations

import logging

import asyncpg

from vpsmon.settings import Settings
from vpsmon.storage.migrations import (
    MigrationReport,
    check_up_to_date,
    migrate,
    migration_lock,
)
from vpsmon.storage.policies import apply_policies
from vpsmon.storage.types import Connection

logger = logging.getLogger(__name__)


async def may_migrate(conn: Connection) -> bool:
    """True for the owner of the schema (or of an empty database's public schema)."""
    allowed: bool = await conn.fetchval(
        "SELECT CASE WHEN to_regclass('public.schema_migrations') IS NULL"
        " THEN has_schema_privilege('public', 'CREATE')"
        " ELSE pg_has_role((SELECT relowner FROM pg_class"
        " WHERE oid = to_regclass('public.schema_migrations')), 'MEMBER') END"
    )
    return allowed


async def upgrade_schema(conn: Connection, settings: Settings) -> MigrationReport:
    """Migrate and set the policies, holding the migration lock across both.

    A role that may not migrate gets the schema as it is, if it is current.
    """
    if not await may_migrate(conn):
        report = await check_up_to_date(conn)
        logger.info("schema is current; not migrating as a server role")
        return report
    async with migration_lock(conn):
        report = await migrate(conn, settings.backend)
        await apply_policies(conn, report.backend, settings)
    return report


async def upgrade_database(dsn: str, settings: Settings) -> MigrationReport:
    """``upgrade_schema`` on a connection of its own, for a process about to start."""
    conn = await asyncpg.connect(dsn)
    try:
        return await upgrade_schema(conn, settings)
    finally:
        await conn.close()
