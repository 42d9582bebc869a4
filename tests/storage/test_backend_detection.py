"""`vpsmon migrate` picks the backend as an operator starts: a brand-new
database without the extension, says which backend and why, and explains the
two hard cases (a role that may not create the extension; a database
migrated for plain PostgreSQL on a server that now offers TimescaleDB)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.cli import run_cli
from tests.support.databases import StorageServer
from vpsmon.storage.dsn import with_database, with_login


async def _has_extension(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        )
        return found
    finally:
        await conn.close()


@pytest.fixture
async def brand_new_database(fresh_database: str) -> str:
    assert not await _has_extension(fresh_database), (
        "a new database must start without the extension"
    )
    return fresh_database


async def test_auto_detection_on_a_brand_new_database(
    storage_server: StorageServer, brand_new_database: str
) -> None:
    code, out, err = await run_cli(brand_new_database, "migrate", backend="auto")
    assert code == 0, err
    first = out.splitlines()[0]
    if storage_server.backend == "timescaledb":
        assert first.startswith("backend: timescaledb (timescaledb 2.")
        assert "timescale licence is preloaded; created the extension" in first
        assert await _has_extension(brand_new_database)
    else:
        assert first == (
            "backend: postgresql (the timescaledb extension is not installed on the server)"
        )
    code, out, _ = await run_cli(brand_new_database, "migrate", backend="auto")
    assert code == 0
    assert out.splitlines()[0] == (
        f"backend: {storage_server.backend} (recorded when the database was first migrated)"
    )


async def test_a_role_that_may_not_create_the_extension_is_told_the_statement(
    storage_server: StorageServer,
) -> None:
    if storage_server.backend != "timescaledb":
        pytest.skip("only a TimescaleDB server offers an extension to refuse")
    admin = await asyncpg.connect(storage_server.dsn)
    owner = f"owner_{id(admin)}"
    database = f"vpsmon_owned_{id(admin)}"
    try:
        # timescaledb is a trusted extension: a role with CREATE on the database
        # may create it. This one may create tables and vpsmon's group roles only.
        await admin.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD 'pw'")
        await admin.execute(f"CREATE DATABASE {database}")
        schema_admin = await asyncpg.connect(with_database(storage_server.dsn, database))
        try:
            await schema_admin.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {owner}")
        finally:
            await schema_admin.close()
        dsn = with_database(with_login(storage_server.dsn, owner, "pw"), database)
        code, _, err = await run_cli(dsn, "migrate", backend="auto")
        assert code == 1
        assert "may not create the extension" in err
        assert "run CREATE EXTENSION timescaledb; (as a superuser" in err
        assert f'in database "{database}"' in err
        assert "VPSMON_BACKEND=postgresql" in err
        # Plain PostgreSQL chosen on purpose, by a role that could now create it.
        await admin.execute(f"GRANT CREATE ON DATABASE {database} TO {owner}")
        code, out, err = await run_cli(dsn, "migrate", backend="postgresql")
        assert code == 0, err
        assert out.startswith("backend: postgresql (plain PostgreSQL was chosen)")
        assert not await _has_extension(dsn)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {owner}")
        await admin.close()


async def test_a_plain_database_on_a_timescaledb_server_is_warned_about(
    storage_server: StorageServer, brand_new_database: str
) -> None:
    if storage_server.backend != "timescaledb":
        pytest.skip("the warning is about a server that offers TimescaleDB")
    code, _, err = await run_cli(brand_new_database, "migrate", backend="postgresql")
    assert code == 0, err
    assert not await _has_extension(brand_new_database)
    code, out, err = await run_cli(brand_new_database, "migrate", backend="auto")
    assert code == 0, err
    assert out.startswith("backend: postgresql (recorded when the database was first migrated)")
    assert "this server offers TimescaleDB, but the database uses plain PostgreSQL" in err
    assert "docs/TIMESCALEDB.md" in err
