"""The migrated databases the tests get are copies of a template migrated once per
session (tests/support/databases.py): a copy must be what migrating an empty
database gives, down to the recorded backend and the grants on the database."""

from __future__ import annotations

import asyncpg

from tests.support.cli import run_cli
from tests.support.databases import StorageServer
from tests.support.schema import fingerprint
from vpsmon.settings import Settings
from vpsmon.storage.backend import recorded_backend
from vpsmon.storage.schema import upgrade_schema

# What migrating leaves besides the tables, each row without its database's name.
STATE = {
    "migrations": "SELECT version, name, checksum, backend FROM schema_migrations ORDER BY version",
    "policies": "SELECT relation, keep FROM retention_policy ORDER BY relation",
    "database grants": (
        "SELECT coalesce(r.rolname, 'PUBLIC') AS grantee, a.privilege_type, a.is_grantable"
        " FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) AS a"
        " LEFT JOIN pg_roles r ON r.oid = a.grantee"
        " WHERE d.datname = current_database() ORDER BY 1, 2"
    ),
}
TIMESCALE_JOBS = (
    "SELECT proc_name, hypertable_name, schedule_interval, config::text"
    " FROM timescaledb_information.jobs ORDER BY 1, 2"
)


async def _state(dsn: str, backend: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        queries = {**STATE, "jobs": TIMESCALE_JOBS} if backend == "timescaledb" else STATE
        state = {what: [tuple(r) for r in await conn.fetch(sql)] for what, sql in queries.items()}
        state["recorded backend"] = [(await recorded_backend(conn),)]
        return state
    finally:
        await conn.close()


async def test_a_copy_is_what_migrating_gives(
    storage_server: StorageServer, migrated_database: str, fresh_database: str
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await upgrade_schema(conn, Settings(backend=storage_server.backend))
    finally:
        await conn.close()
    copy = await _state(migrated_database, storage_server.backend)
    assert copy["recorded backend"] == [(storage_server.backend,)]
    assert copy["database grants"], "the migrations close the database to PUBLIC"
    assert copy == await _state(fresh_database, storage_server.backend)
    assert await fingerprint(migrated_database) == await fingerprint(fresh_database)


async def test_migrate_on_a_copy_applies_nothing_and_keeps_the_recorded_backend(
    storage_server: StorageServer, migrated_database: str
) -> None:
    code, out, err = await run_cli(migrated_database, "migrate", backend="auto")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"backend: {storage_server.backend} (recorded when the database was first migrated)"
    )
    assert lines[-1].endswith(" migrations, 0 applied now")
