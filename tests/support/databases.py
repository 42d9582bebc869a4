"""Throwaway databases and login roles on a test PostgreSQL server.

A test that needs a migrated database gets a clone of a template migrated once
per session and server (``build_template``, ``clone_database``): copying a
database is a fraction of running every migration, and the template is made by
the normal migrate code, so it holds whatever migrations exist.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from vpsmon.settings import BackendChoice, Settings
from vpsmon.storage.dsn import database_name, with_database, with_login
from vpsmon.storage.schema import upgrade_schema

# How long a clone waits for the template to be free (see clone_database).
TEMPLATE_BUSY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StorageServer:
    """A PostgreSQL server on which tests create databases, and the backend to migrate for."""

    name: str
    dsn: str
    backend: BackendChoice


def _new_name(prefix: str = "vpsmon_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def create_database(server_dsn: str, name: str | None = None) -> str:
    """An empty database (a copy of template1, as PostgreSQL makes them); its URL."""
    name = name or _new_name()
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_dsn, name)


async def build_template(server: StorageServer) -> str:
    """A database migrated for ``server.backend`` by the servers' own code path
    (upgrade_schema: migrations, then policies), closed to connections; its name."""
    dsn = await create_database(server.dsn, _new_name("vpsmon_template"))
    conn = await asyncpg.connect(dsn)
    try:
        await upgrade_schema(conn, Settings(backend=server.backend))
    finally:
        await conn.close()
    name = database_name(dsn)
    admin = await asyncpg.connect(server.dsn)
    try:
        # CREATE DATABASE ... TEMPLATE refuses a source anyone is connected to, and
        # TimescaleDB runs a job scheduler in every database with the extension: close
        # the template (its launcher skips such databases) and end who is still there.
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await _disconnect(admin, name)
    finally:
        await admin.close()
    return name


async def clone_database(server_dsn: str, template: str) -> str:
    """A new database that is a copy of ``template``, with its grants; its URL."""
    name = _new_name()
    admin = await asyncpg.connect(server_dsn)
    try:
        deadline = time.monotonic() + TEMPLATE_BUSY_TIMEOUT_S
        while True:
            try:
                await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                break
            except asyncpg.ObjectInUseError:
                # "source database is being accessed by other users": a backend that
                # was on the template has not exited yet (CREATE DATABASE already gave
                # it 5 s). End it again and retry, for a bounded time.
                if time.monotonic() > deadline:
                    raise
                await _disconnect(admin, template)
        await _copy_grants(admin, template, name)
    finally:
        await admin.close()
    return with_database(server_dsn, name)


@asynccontextmanager
async def migrated_template(server: StorageServer) -> AsyncIterator[str]:
    """A template for ``server`` (see build_template) while the block runs; its name."""
    name = await build_template(server)
    try:
        yield name
    finally:
        await drop_database(server.dsn, with_database(server.dsn, name))


@asynccontextmanager
async def throwaway_database(server_dsn: str, template: str | None = None) -> AsyncIterator[str]:
    """A new database, empty or a clone of ``template``, dropped after the block; its URL."""
    if template is None:
        dsn = await create_database(server_dsn)
    else:
        dsn = await clone_database(server_dsn, template)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, dsn)


async def _disconnect(admin: asyncpg.Connection, database: str) -> None:
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )


async def _copy_grants(admin: asyncpg.Connection, source: str, target: str) -> None:
    """Give ``target`` the privileges on ``source`` itself (CONNECT, TEMPORARY, CREATE).

    They live in pg_database, which a copy does not take over, and vpsmon's
    migrations change them: the database is closed to PUBLIC and opened to
    vpsmon's roles.
    """
    grants = await admin.fetch(
        "SELECT a.privilege_type, a.is_grantable,"
        " CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee"
        " FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) AS a"
        " LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE d.datname = $1",
        source,
    )
    if not grants:
        return  # the default privileges, as the copy has them
    await admin.execute(f'REVOKE ALL ON DATABASE "{target}" FROM PUBLIC')
    for grant in grants:
        option = " WITH GRANT OPTION" if grant["is_grantable"] else ""
        await admin.execute(
            f'GRANT {grant["privilege_type"]} ON DATABASE "{target}" TO {grant["grantee"]}{option}'
        )


async def drop_database(server_dsn: str, dsn: str) -> None:
    """Drop the database of ``dsn``, whoever is connected to it."""
    name = database_name(dsn)
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def login_role(owner_dsn: str, group: str | None) -> AsyncIterator[str]:
    """A DSN for a new login role with a password, a member of ``group`` (or of none),
    dropped afterwards."""
    name = f"vpsmon_test_{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(16)
    member = f" IN ROLE {group}" if group else ""
    conn = await asyncpg.connect(owner_dsn)
    try:
        await conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'{member}")
        yield with_login(owner_dsn, name, password)
    finally:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
        await conn.execute(f"DROP ROLE {name}")
        await conn.close()
