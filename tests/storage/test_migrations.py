"""`vpsmon migrate`: idempotent, serialized across processes, and strict about edited files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from tests.support.cli import run_cli
from tests.support.databases import StorageServer
from tests.support.schema import applied_versions, fingerprint
from vpsmon.errors import MigrationError
from vpsmon.storage.backend import Backend
from vpsmon.storage.migrations import load_migrations, migrate, migrations_dir


def all_versions() -> list[int]:
    return [m.version for m in load_migrations(Backend.POSTGRESQL)]


async def test_migrate_twice_in_a_row_is_a_no_op(
    storage_server: StorageServer, fresh_database: str
) -> None:
    code, out, err = await run_cli(fresh_database, "migrate", backend=storage_server.backend)
    assert code == 0, err
    assert f"backend: {storage_server.name}" in out
    assert "applied 0001_core.sql" in out
    first = await fingerprint(fresh_database)

    code, out, err = await run_cli(fresh_database, "migrate", backend=storage_server.backend)
    assert code == 0, err
    assert "0 applied now" in out
    assert await fingerprint(fresh_database) == first
    assert sorted(await applied_versions(fresh_database)) == all_versions()


async def test_concurrent_migrations_leave_one_schema(
    storage_server: StorageServer, fresh_database: str, embedded_database: str
) -> None:
    results = await asyncio.gather(
        *(run_cli(fresh_database, "migrate", backend=storage_server.backend) for _ in range(3))
    )
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    applied_now = sorted(out.count("applied 0") for _, out, _ in results)
    assert applied_now == [0, 0, len(all_versions())]
    assert sorted(await applied_versions(fresh_database)) == all_versions()

    # The same schema as one sequential run produces.
    if storage_server.name == "postgresql":
        code, _, err = await run_cli(embedded_database, "migrate")
        assert code == 0, err
        assert await fingerprint(fresh_database) == await fingerprint(embedded_database)


async def test_an_edited_applied_migration_is_refused_by_name(
    embedded_database: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), directory)
    conn = await asyncpg.connect(embedded_database)
    try:
        await migrate(conn, "postgresql", directory)
        edited = directory / "0001_core.sql"
        edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
        with pytest.raises(MigrationError, match=r"0001_core\.sql was edited"):
            await migrate(conn, "postgresql", directory)
    finally:
        await conn.close()


async def test_cli_refuses_a_migration_whose_checksum_differs(embedded_database: str) -> None:
    code, _, err = await run_cli(embedded_database, "migrate")
    assert code == 0, err
    conn = await asyncpg.connect(embedded_database)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 2")
    finally:
        await conn.close()
    code, _, err = await run_cli(embedded_database, "migrate")
    assert code == 1
    assert "0002_rollups.postgresql.sql was edited after it was applied" in err
    assert "Traceback" not in err


async def test_a_badly_named_migration_file_is_refused(
    embedded_database: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), directory)
    (directory / "4_oops.sql").write_text("SELECT 1;")
    conn = await asyncpg.connect(embedded_database)
    try:
        with pytest.raises(MigrationError, match=r"4_oops\.sql"):
            await migrate(conn, "postgresql", directory)
    finally:
        await conn.close()


async def test_timescaledb_requested_without_it_is_a_clear_error(embedded_database: str) -> None:
    code, _, err = await run_cli(embedded_database, "migrate", backend="timescaledb")
    assert code == 1
    assert "VPSMON_BACKEND=timescaledb" in err
    assert "Traceback" not in err
