"""Ordered SQL migrations, applied once each, serialized across processes.

Files are ``NNNN_name.sql`` for both backends, or a pair
``NNNN_name.postgresql.sql`` / ``NNNN_name.timescaledb.sql`` where the
backends differ. Each applied migration is recorded with the SHA-256 of the
file that ran; editing an applied file is refused, because the database would
silently no longer match the code.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from vpsmon.constants import MIGRATION_LOCK_KEY
from vpsmon.errors import MigrationError
from vpsmon.settings import BackendChoice
from vpsmon.storage.backend import Backend, BackendDecision, detect_backend, recorded_backend
from vpsmon.storage.types import Connection

logger = logging.getLogger(__name__)

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(postgresql|timescaledb))?\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationReport:
    decision: BackendDecision
    applied: list[Migration]
    already_applied: int

    @property
    def backend(self) -> Backend:
        return self.decision.backend


def migrations_dir() -> Path:
    """db/migrations in a source checkout; the copy packaged into the wheel otherwise."""
    checkout = Path(__file__).resolve().parents[2] / "db" / "migrations"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("vpsmon.storage") / "_migrations"))


def load_migrations(backend: Backend, directory: Path | None = None) -> list[Migration]:
    """The migrations that apply to ``backend``, in version order."""
    by_version: dict[int, dict[str | None, Path]] = {}
    for path in sorted((directory or migrations_dir()).glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path.name}: migration files must be named NNNN_name.sql "
                "or NNNN_name.<postgresql|timescaledb>.sql"
            )
        variants = by_version.setdefault(int(match.group(1)), {})
        variants[match.group(3)] = path
    result = []
    for version, variants in sorted(by_version.items()):
        if None in variants and len(variants) > 1:
            raise MigrationError(f"migration {version:04d} has both a shared and a backend file")
        chosen = variants.get(None) or variants.get(backend.value)
        if chosen is None:
            raise MigrationError(f"migration {version:04d} has no file for {backend.value}")
        match = _FILENAME.match(chosen.name)
        assert match is not None
        result.append(Migration(version, match.group(2), chosen))
    return result


async def migrate(
    conn: Connection,
    backend_choice: BackendChoice = "auto",
    directory: Path | None = None,
) -> MigrationReport:
    """Bring the schema up to date; concurrent callers wait for each other."""
    async with migration_lock(conn):
        return await _migrate_locked(conn, backend_choice, directory)


@asynccontextmanager
async def migration_lock(conn: Connection) -> AsyncIterator[None]:
    """Serialize schema changes across processes; re-entrant within one connection."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def check_up_to_date(conn: Connection, directory: Path | None = None) -> MigrationReport:
    """The schema as it is, or an error naming what `vpsmon migrate` (as the owner) must do."""
    user = await conn.fetchval("SELECT current_user")
    backend = await recorded_backend(conn)
    if backend is None:
        raise MigrationError(
            f"the database has no vpsmon schema and role {user} may not create it:"
            " run `vpsmon migrate` as the database owner first"
        )
    applied = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    stale = [
        m.path.name
        for m in load_migrations(backend, directory)
        if applied.get(m.version) != m.checksum
    ]
    if stale:
        raise MigrationError(
            f"migrations {', '.join(stale)} are not applied and role {user} does not own"
            " the schema: run `vpsmon migrate` as the owner first"
        )
    decision = BackendDecision(backend, "recorded when the database was first migrated")
    return MigrationReport(decision, [], len(applied))


async def _migrate_locked(
    conn: Connection, backend_choice: BackendChoice, directory: Path | None
) -> MigrationReport:
    recorded = await recorded_backend(conn)
    decision = await detect_backend(conn, recorded.value if recorded else backend_choice)
    if recorded is not None:
        decision = replace(decision, reason="recorded when the database was first migrated")
    backend = decision.backend
    if decision.warning is not None:
        logger.warning("%s", decision.warning)
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            checksum   text NOT NULL,
            backend    text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    applied = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    pending = []
    for migration in load_migrations(backend, directory):
        if migration.version not in applied:
            pending.append(migration)
        elif applied[migration.version] != migration.checksum:
            raise MigrationError(
                f"migration {migration.path.name} was edited after it was applied "
                f"(recorded sha256 {applied[migration.version][:12]}…, "
                f"file sha256 {migration.checksum[:12]}…); add a new migration instead"
            )
    for migration in pending:
        logger.info("applying migration %s", migration.path.name)
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, backend)"
                " VALUES ($1, $2, $3, $4)",
                migration.version,
                migration.name,
                migration.checksum,
                backend.value,
            )
    return MigrationReport(decision, pending, len(applied))
