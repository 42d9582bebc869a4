"""Everything a process does before it uses the database: migrations, then policies."""

from __future__ import annotations

from vpsmon.settings import Settings
from vpsmon.storage.migrations import MigrationReport, migrate, migration_lock
from vpsmon.storage.policies import apply_policies
from vpsmon.storage.types import Connection


async def upgrade_schema(conn: Connection, settings: Settings) -> MigrationReport:
    """Migrate and set the policies, holding the migration lock across both."""
    async with migration_lock(conn):
        report = await migrate(conn, settings.backend)
        await apply_policies(conn, report.backend, settings)
    return report
