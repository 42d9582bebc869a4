"""Throwaway databases on a test PostgreSQL server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from vpsmon.settings import BackendChoice
from vpsmon.storage.dsn import database_name, with_database


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
