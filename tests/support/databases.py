"""Throwaway databases and login roles on a test PostgreSQL server."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from vpsmon.settings import BackendChoice
from vpsmon.storage.dsn import database_name, with_database, with_login


@dataclass(frozen=True)
class StorageServer:
    """A PostgreSQL server on which tests create databases, and the backend to migrate for."""

    name: str
    dsn: str
    backend: BackendChoice


async def create_database(server_dsn: str) -> str:
    name = f"vpsmon_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_dsn, name)


async def drop_database(server_dsn: str, dsn: str) -> None:
    name = database_name(dsn)
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def login_in_role(dsn: str, group: str) -> str:
    """A new login role that is a member of ``group``; its URL for the same database."""
    name = f"login_{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group}")
    finally:
        await conn.close()
    return as_login(dsn, name, password)


def as_login(dsn: str, user: str, password: str, database: str | None = None) -> str:
    """The same server as ``dsn``, as another login (and maybe another database)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
    return url if database is None else with_database(url, database)


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
