"""Who may connect to a migrated database, and what a server role does at start-up."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from tests.support.databases import StorageServer, login_role
from vpsmon.errors import MigrationError
from vpsmon.settings import Settings
from vpsmon.storage.migrations import check_up_to_date, load_migrations, migrations_dir
from vpsmon.storage.schema import upgrade_schema


async def test_a_role_outside_vpsmon_groups_cannot_connect(migrated_database: str) -> None:
    async with login_role(migrated_database, None) as stranger:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT"):
            await asyncpg.connect(stranger)


@pytest.mark.parametrize("group", ["vpsmon_reader", "vpsmon_ingest", "vpsmon_query"])
async def test_vpsmon_groups_connect_but_create_nothing(migrated_database: str, group: str) -> None:
    async with login_role(migrated_database, group) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            for sql in ("CREATE TEMP TABLE t (id int)", "CREATE TABLE public.t (id int)"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(sql)
        finally:
            await conn.close()


async def test_server_role_uses_a_current_schema_without_migrating(migrated_database: str) -> None:
    async with login_role(migrated_database, "vpsmon_ingest") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            report = await upgrade_schema(conn, Settings())
            assert report.applied == []
            assert report.already_applied == len(load_migrations(report.backend))
        finally:
            await conn.close()


async def test_server_role_refuses_a_stale_schema(migrated_database: str, tmp_path: Path) -> None:
    newer = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), newer)
    (newer / "0999_later.sql").write_text("CREATE TABLE later (id int);\n")
    async with login_role(migrated_database, "vpsmon_query") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(MigrationError, match=r"0999_later\.sql.*vpsmon migrate"):
                await check_up_to_date(conn, newer)
        finally:
            await conn.close()


async def test_server_role_on_an_empty_database_says_to_migrate(
    storage_server: StorageServer, fresh_database: str
) -> None:
    admin = await asyncpg.connect(fresh_database)
    try:
        await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    finally:
        await admin.close()
    async with login_role(fresh_database, None) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(MigrationError, match=r"no vpsmon schema.*vpsmon migrate"):
                await upgrade_schema(conn, Settings(backend=storage_server.backend))
        finally:
            await conn.close()
