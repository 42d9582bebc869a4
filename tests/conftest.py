"""Shared fixtures: one throwaway embedded PostgreSQL per test session, a fresh
database per test, and the storage backends the contract suites run against."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from vpsmon.settings import BackendChoice
from vpsmon.storage.dsn import database_name, with_database
from vpsmon.storage.embedded import EmbeddedPostgres

TIMESCALE_URL_ENV = "VPSMON_TEST_TIMESCALE_URL"


@dataclass(frozen=True)
class StorageServer:
    """A PostgreSQL server on which tests create databases, and the backend to migrate for."""

    name: str
    dsn: str
    backend: BackendChoice


@pytest.fixture(scope="session")
def embedded_server_dsn() -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="vpsmon-test-pg-", dir="/tmp")) / "pg18"
    server = EmbeddedPostgres(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session", params=["postgresql", "timescaledb"])
def storage_server(request: pytest.FixtureRequest) -> StorageServer:
    """Every backend the storage contract must hold on; TimescaleDB only when configured."""
    if request.param == "timescaledb":
        url = os.environ.get(TIMESCALE_URL_ENV)
        if not url:
            pytest.skip(f"TimescaleDB contract tests need {TIMESCALE_URL_ENV} (a superuser URL)")
        return StorageServer("timescaledb", url, "timescaledb")
    dsn = request.getfixturevalue("embedded_server_dsn")
    return StorageServer("postgresql", dsn, "postgresql")


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


@pytest.fixture
async def fresh_database(storage_server: StorageServer) -> AsyncIterator[str]:
    """An empty database on the backend's server, dropped afterwards."""
    dsn = await create_database(storage_server.dsn)
    try:
        yield dsn
    finally:
        await drop_database(storage_server.dsn, dsn)


@pytest.fixture
async def embedded_database(embedded_server_dsn: str) -> AsyncIterator[str]:
    """An empty database on the embedded (plain PostgreSQL) server."""
    dsn = await create_database(embedded_server_dsn)
    try:
        yield dsn
    finally:
        await drop_database(embedded_server_dsn, dsn)
